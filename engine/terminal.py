"""What every command group of the command line shares: its consoles and its common options."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Optional

import typer
from rich.console import Console

# Piped or captured output keeps whole values: a table is never squeezed to an 80-column guess.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 1000)
err = Console(stderr=True, soft_wrap=True)  # a message is one line, never cut mid-phrase


def parse_date(value: Optional[str]) -> Optional[dt.date]:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a date (YYYY-MM-DD)") from None


def open_store(db: Optional[str]):
    from .store import Store  # SQLAlchemy is a slow import: only commands that use the store pay for it

    return Store(db)


DbOpt = typer.Option(None, "--db", help="SQLAlchemy URL of the store (default: $PAYERPOLICY_DB or a SQLite "
                                         "file in the user data directory).")
