"""`python -m mailramp` is the `mailramp` command."""

from mailramp.cli.main import app

app()
