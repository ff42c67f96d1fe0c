"""payerpolicy: a bitemporal payer-policy rules engine for professional claims.

Flow, one direction only: parse (claims) -> facts -> rules -> findings -> report.
Payer knowledge lives in the policy tree, never in this package.

The distribution and the command are ``payerpolicy``; the import name is ``engine``. Its
Python API (``engine.api``) is reachable from here::

    from engine import load_policies, scrub_claims, findings_table, suggest_coding, whatif_claims, analyse_denials
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_policies", "scrub_claims", "findings_table", "suggest_coding", "whatif_claims",
           "analyse_denials"]

_API = {"load_policies", "scrub_claims", "findings_table", "suggest_coding", "whatif_claims", "analyse_denials"}


def __getattr__(name: str) -> Any:
    # Loaded on first use, so the command line's start-up does not pay for the whole API.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
