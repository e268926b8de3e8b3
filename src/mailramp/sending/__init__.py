"""Turning a campaign and its recipients into delivered email: import, plan, claim, send."""
