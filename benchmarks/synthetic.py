"""Synthetic claims for benchmarks and tests: reproducible from a seed, spread over
payers, states, codes, modalities and dates of service 2019-2026."""

from __future__ import annotations

import datetime as dt
import random
from typing import Iterator

PAYERS = [("medicare", None), ("medicaid", "TX"), ("medicaid", "NM"), ("medicaid", "NY"), ("commercial", None),
          ("aetna", "NY"), ("cigna", "TX"), ("uhc", "OH"), ("bcbs", "IL"), ("bcbs", "MI")]
CODES = ["99202", "99203", "99204", "99205", "99211", "99212", "99213", "99214", "99215", "99441", "99442",
         "99443", "90832", "90834", "90837", "90791", "36415", "G2012", "98013"]
ADDONS = ["90833", "90836", "90863", "99417", "G2212"]
MODALITIES = ["in-person", "in-person", "video", "audio-only"]
LOCATIONS = ["home", "office", "clinic", None]
PROVIDERS = ["MD", "DO", "NP", "PA", "psychologist", "LCSW"]


def synthetic_claims(count: int, seed: int) -> list[dict]:
    return list(iter_synthetic_claims(count, seed))


def iter_synthetic_claims(count: int, seed: int) -> Iterator[dict]:
    """One claim at a time, so a million need not be held."""
    rng = random.Random(seed)
    start = dt.date(2019, 1, 1).toordinal()
    span = dt.date(2026, 11, 1).toordinal() - start
    for n in range(count):
        payer, state = rng.choice(PAYERS)
        day = dt.date.fromordinal(start + rng.randrange(span))
        modality = rng.choice(MODALITIES)
        lines = [{"code": rng.choice(CODES), "charge": round(rng.uniform(40, 250), 2)}]
        if rng.random() < 0.35:
            lines.append({"code": rng.choice(ADDONS)})
        if modality != "in-person" and rng.random() < 0.6:
            lines[0]["modifiers"] = [rng.choice(["95", "93", "GT"])]
        claim = {
            "id": f"B-{n}", "payer": payer, "service_date": day.isoformat(),
            "place_of_service": rng.choice(["11", "02", "10", "11"]),
            "patient": {"id": f"P-{rng.randrange(count // 4 + 1)}", "location": rng.choice(LOCATIONS)},
            "rendering_provider": {"type": rng.choice(PROVIDERS), "prescribing_psychologist": rng.random() < 0.5},
            "diagnoses": [rng.choice(["F33.1", "F41.1", "I10", "E11.9", "F90.0"])],
            "encounter": {"modality": modality, "total_minutes": rng.randrange(5, 80),
                          "level_basis": rng.choice(["mdm", "time"]), "mdm": rng.choice(["low", "moderate", "high"])},
            "lines": lines,
        }
        if state:
            claim["state"] = state
        yield claim
