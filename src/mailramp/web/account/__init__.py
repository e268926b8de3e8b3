"""The account routes: JSON API (api.py) and dashboard pages (pages.py)."""
