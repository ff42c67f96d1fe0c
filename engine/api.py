"""The Python API: the command line's uses as functions, for notebooks and pipelines.

``import engine`` stays cheap: these names load on first use (see ``engine/__init__.py``).
Every function takes the date the rules are known on explicitly; nothing here reads the
clock or writes the store. Imported CMS releases (``payerpolicy data import``) are read only
when ``data_db`` names the store that holds them.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Iterable

from .claims import Claim
from .pipeline import validate_items
from .policy.loader import load_policies
from .policy.model import PolicySet
from .scrub import ScrubResult, scrub

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow

    from .denials import DenialReport
    from .suggest import Suggestion
    from .whatif import Comparison

__all__ = ["load_policies", "scrub_claims", "findings_table", "suggest_coding", "whatif_claims", "analyse_denials"]


def _reference(data_db: str | None) -> str | None:
    from .reference.lookup import reference_path

    return reference_path(data_db) if data_db else None


def scrub_claims(claims: Iterable[dict[str, Any]], known_on: dt.date,
                 policy: PolicySet | None = None, data_db: str | None = None) -> ScrubResult:
    """Judge claims given as DESIGN.md JSON objects (dicts), in memory and in order.

    A claim that is not valid comes back ``invalid`` with its errors; the rest are judged.
    Claims of one patient in the batch are each other's history; no stored history is read.
    ``data_db``: a store URL whose imported CMS releases the NCCI and fee-schedule rules use.
    """
    policy = policy or load_policies()
    return scrub(validate_items(list(claims), None, policy), policy, known_on, reference=_reference(data_db))


def findings_table(claims: Iterable[dict[str, Any]], known_on: dt.date,
                   policy: PolicySet | None = None, data_db: str | None = None) -> "pyarrow.Table":
    """The same claims judged, as the findings table ``scrub --format parquet`` writes: one row per
    finding and one per claim without findings (``.to_pandas()`` for a DataFrame)."""
    import pyarrow as pa

    from .reports.writers import FINDING_COLUMNS, table_columns

    policy = policy or load_policies()
    items = validate_items(list(claims), None, policy)
    result = scrub(items, policy, known_on, reference=_reference(data_db))
    records = []
    for item, claim in zip(items, result.claims):
        record = {"position": claim.position, "result": claim.as_dict()}
        if isinstance(item, Claim):
            record.update(payer=item.payer, state=item.state, service_date=item.service_date.isoformat())
        records.append(record)
    findings, _ = table_columns(records, known_on, policy.digest)
    return pa.table({name: findings[name] for name in FINDING_COLUMNS})


def suggest_coding(encounter: dict[str, Any], known_on: dt.date, policy: PolicySet | None = None,
                   data_db: str | None = None) -> "Suggestion":
    """What to bill for an encounter (a DESIGN.md claim without lines): the recommended coding,
    the alternatives with what sinks each, and what the note must show; ranked by the imported
    fee schedule's relative values when ``data_db`` holds one."""
    from .suggest import suggest

    return suggest(encounter, policy or load_policies(), known_on, _reference(data_db))


def whatif_claims(claims: Iterable[dict[str, Any]], known_on: dt.date, sets: list[str] | None = None,
                  compare_known_on: dt.date | None = None, policy: PolicySet | None = None,
                  data_db: str | None = None) -> "list[Comparison]":
    """The claims as given against variants of them, as ``payerpolicy whatif`` does: each ``sets``
    entry is a ``--set`` (``"payer=aetna,uhc"``, ``"line1.modifiers=93"``) and several make a grid;
    or, with ``compare_known_on``, the same claims as known on that second date. Each comparison
    lists, per claim, the findings added, removed and changed (``.as_dict()`` for the JSON)."""
    from .whatif import claim_variants, knowledge_dates

    policy = policy or load_policies()
    items = validate_items(list(claims), None, policy)
    reference = _reference(data_db)
    if compare_known_on is not None:
        return [knowledge_dates(items, policy, known_on, compare_known_on, reference=reference)]
    if not sets:
        raise ValueError("say what to vary: sets, or compare_known_on")
    return claim_variants(items, policy, known_on, sets, reference=reference)


def analyse_denials(paths: "Iterable[str | Path]", today: dt.date, policy: PolicySet | None = None,
                    data_db: str | None = None) -> "DenialReport":
    """Past claims and their remittances, re-judged as ``payerpolicy denials --no-store`` does:
    ``paths`` are claim files (837, JSON) and remittance files (835, CSV) in any mix, sorted by
    content. Nothing is stored. The report's ``.totals()``, ``.worklist()`` and ``.as_dict()``
    say which denials the rules explain, which they do not, and which a later change overturned;
    ``.not_analysed`` lists the claims that could not be read, with why, and ``.files`` the
    problems of files outside every claim (an envelope error, a file with no claims)."""
    from pathlib import Path

    from .denials import analyse_files

    return analyse_files([Path(p) for p in paths], policy or load_policies(), today, reference=_reference(data_db))
