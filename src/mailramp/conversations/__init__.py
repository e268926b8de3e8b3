"""Conversations: what campaigns start — each person's lead status (and the user's own
labels), the unified inbox of replies, answering from it, and outgoing webhooks."""
