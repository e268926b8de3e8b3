"""Campaigns: one message to a list of recipients, spread across a time window."""
