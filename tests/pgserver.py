"""A throwaway PostgreSQL server for the store tests, started from the system's packages.

The server listens on a Unix socket in its own folder only (no TCP port to collide on),
with fsync off: it holds test data for the length of one test session.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path


def _program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PostgresServer:
    def __init__(self, folder: Path, as_user: list[str]):
        self.folder = folder
        self.as_user = as_user

    @classmethod
    def start(cls) -> "PostgresServer | None":
        initdb, pg_ctl = _program("initdb"), _program("pg_ctl")
        if not initdb or not pg_ctl:
            return None
        folder = Path(tempfile.mkdtemp(prefix="payerpolicy-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root: run it as the packages' own user
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                return None
            os.chown(folder, account.pw_uid, account.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        data = folder / "data"
        run = lambda *args: subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)  # noqa: E731
        try:
            run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
            run(pg_ctl, "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
                f"-k {folder} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200", "start")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
            shutil.rmtree(folder, ignore_errors=True)
            return None
        server = cls(folder, as_user)
        server._pg_ctl, server._data = pg_ctl, data
        return server

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.folder}"

    def new_database(self) -> str:
        from sqlalchemy import create_engine, text

        name = "t_" + uuid.uuid4().hex[:16]
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.as_user, self._pg_ctl, "-D", str(self._data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
