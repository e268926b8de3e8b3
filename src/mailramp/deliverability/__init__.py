"""Keeping mailboxes out of spam: their day-by-day history and health, and the brakes."""
