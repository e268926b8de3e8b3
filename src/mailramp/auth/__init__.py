"""Signing in: local accounts with session cookies, API keys, and (next) Clerk."""
