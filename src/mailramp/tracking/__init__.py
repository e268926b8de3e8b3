"""Per-recipient records (`email_tracking`): the send queue and what happened to each email."""
