"""The legacy routes: JSON API (api.py) and dashboard pages (pages.py)."""
