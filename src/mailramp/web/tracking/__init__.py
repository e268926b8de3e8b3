"""The tracking endpoints mail clients and people reach: pixel, click, unsubscribe."""
