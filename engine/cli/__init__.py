"""The command line: one entry point, ``payerpolicy``, one module per command or command group.

Each command module registers on the root ``app`` (``_app.py``); what they share (consoles, the
date and store options, loading the tree) is in ``_options.py``. Heavy imports stay inside the
commands, so ``--help`` and a one-claim scrub start quickly.
"""

from __future__ import annotations

from ._app import app
from ._options import err
from .data import data_app
from .policy import policy_app
from .runs import runs_app

# Each command module registers its command on import; this order is the order of the help.
from . import scrub, suggest, whatif, denials, remits, export, serve  # noqa: E402,F401,I001  isort:skip

app.add_typer(policy_app, name="policy")
app.add_typer(runs_app, name="runs")
app.add_typer(data_app, name="data")

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except Exception as exc:
        # The store's errors are written for people and carry no claim data; any other error
        # from the database layer is named by its type only (its text could quote a statement).
        from_store = type(exc).__module__.startswith(("engine.store", "sqlalchemy"))
        if not from_store:
            raise
        reason = str(exc) if type(exc).__module__ == "engine.store" else type(exc).__name__
        err.print(f"store: {reason}", style="red", markup=False, highlight=False)
        raise SystemExit(2) from None

