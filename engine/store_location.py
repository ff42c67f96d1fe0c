"""Where the store is: its URL from --db, $PAYERPOLICY_DB or the user data folder.

Kept apart from ``store`` (and SQLAlchemy): commands that only need to know where the store is
- to read imported CMS releases beside a --no-store run - do not pay for importing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_DB = "PAYERPOLICY_DB"


def sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///") or url in ("sqlite://", "sqlite:///:memory:"):
        return None
    return Path(url[len("sqlite:///"):].split("?", 1)[0])


def default_url() -> str:
    folder = Path(platformdirs.user_data_dir("payerpolicy", appauthor=False))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{folder / 'payerpolicy.sqlite'}"


def resolve_url(url: str | None) -> str:
    return url or os.environ.get(ENV_DB) or default_url()
