"""What every command group of the command line shares: its consoles, its common options, loading the tree."""

from __future__ import annotations

import datetime as dt
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..policy.loader import PolicyLoadError, load_policies
from ..policy.model import PolicySet

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
    from ..store import Store  # SQLAlchemy is a slow import: only commands that use the store pay for it

    return Store(db)


DbOpt = typer.Option(None, "--db", help="SQLAlchemy URL of the store (default: $PAYERPOLICY_DB or a SQLite "
                                         "file in the user data directory).")

PROGRESS_MIN = 200


class Format(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    html = "html"
    parquet = "parquet"


class ShortFormat(str, Enum):
    table = "table"
    json = "json"


PoliciesOpt = typer.Option(None, "--policies", help="Policy tree to use (default: the bundled one).",
                           file_okay=False, dir_okay=True)
KnownOnOpt = typer.Option(None, "--known-on", help="Judge by the rules as known on this date (default today).",
                          callback=parse_date, metavar="DATE")


def file_problem_text(problem) -> str:
    """A problem of a file, outside every claim, as one line for stderr."""
    return f"{problem.name}" + (f" segment {problem.segment}" if problem.segment else "") + f": {problem.reason}"


def read_batch(files, policy: PolicySet) -> tuple[list, list]:
    """Claim files read into memory for a command; a file's own problems (outside every claim)
    are said on stderr, never counted as claims; an unreadable path is a usage error (exit 2)."""
    from ..pipeline import UsageError, read_claim_files

    problems: list = []
    try:
        items = read_claim_files(files, policy, files=problems)
    except UsageError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2)
    for problem in problems:
        err.print(file_problem_text(problem), highlight=False, markup=False)
    return items, problems


def count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def load_tree(policies: Optional[Path]) -> PolicySet:
    try:
        return load_policies(policies)
    except PolicyLoadError as exc:
        for e in exc.errors:
            err.print(f"[red]{e}[/]", highlight=False)
        raise typer.Exit(2)

