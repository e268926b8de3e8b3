"""mailramp: self-hostable cold-email outreach.

The Python API is `mailramp.db_manager` (see docs/schema.md's usage examples)."""

__version__ = "0.1.0"
