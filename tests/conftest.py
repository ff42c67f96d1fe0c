import datetime as dt
import json
from pathlib import Path

import pytest
from freezegun import freeze_time

import engine.store  # noqa: F401  (imported before any test freezes the clock: its models name datetime)
from engine.claims import parse_claims_text
from engine.policy.loader import bundled_policies, load_policies

TODAY = "2026-11-27"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def policy():
    return load_policies()


@pytest.fixture
def frozen_today():
    with freeze_time(TODAY):
        yield dt.date.fromisoformat(TODAY)


STORES = ["sqlite", "postgresql"]


@pytest.fixture(params=STORES)
def db_url(request, tmp_path):
    """Every store test runs on SQLite, and on PostgreSQL where its server programs are installed."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server from the system's packages, on a Unix socket in a temporary folder."""
    from .pgserver import PostgresServer

    server = PostgresServer.start()
    if server is None:
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """A new, empty database on the test server."""
    return postgres_server.new_database()


@pytest.fixture
def policy_copy(tmp_path):
    """A writable copy of the bundled policy tree, for tests that break or extend it."""
    import shutil

    target = tmp_path / "policies"
    shutil.copytree(bundled_policies(), target)
    return target


def claims(*raw):
    return parse_claims_text(json.dumps(list(raw)))


def claim(**fields):
    base = {"id": "T-1", "payer": "medicare", "service_date": "2024-03-04", "lines": [{"code": "99213"}]}
    base.update(fields)
    return base


def judged(findings):
    """Findings without the note that no imported CMS release covered the date (most tests run
    with no release imported; tests/test_reference.py covers that note and the tables)."""
    def rule(f):
        return f["rule"] if isinstance(f, dict) else f.rule
    return [f for f in findings if not rule(f).endswith(".reference-data-unchecked")]
