"""The `mailramp` command."""
