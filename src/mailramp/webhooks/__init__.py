"""Outgoing webhooks: the event log pushed to each user's endpoints, signed with the Standard
Webhooks scheme, at least once and in order per person, retried on the spec's schedule."""
