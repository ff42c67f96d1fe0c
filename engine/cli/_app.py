"""The root command every command module registers on, and its ``--version``."""

from __future__ import annotations

import typer

from ._options import out

app = typer.Typer(help="A payer-policy rules engine for professional claims: scrub, explain, ask what-if.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        out.print(f"payerpolicy {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """A payer-policy rules engine for professional claims: scrub, explain, ask what-if."""
