"""Seeded hostile inputs (JSON, JSON Lines, X12, policy YAML) and what must hold for each.

Used by the suite (a bounded count) and by ``make soak`` (10,000 and more). Every input
goes through the functions the command line runs and, for claim bodies, the HTTP app:
none may raise, none may take longer than ``SLOW_SECONDS``, and every claim result is
judged or invalid with a field named.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
X12 = sorted((ROOT / "tests" / "fixtures" / "x12").glob("*.837"))
BASE = json.loads((ROOT / "examples" / "claims.json").read_text())["claims"][:5]
KNOWN = dt.date(2026, 11, 27)
SLOW_SECONDS = 30.0  # a hang, not a slow X12 validation on a loaded machine (slowest seen: 4.2 s)

ODD_VALUES: list[Callable[[random.Random], Any]] = [
    lambda r: None, lambda r: True, lambda r: -1, lambda r: 10**30, lambda r: 1e308 * 10, lambda r: float("nan"),
    lambda r: "", lambda r: "x" * r.choice([101, 5000, 200_000]), lambda r: "\u0000\u202e\ud7ff",
    lambda r: [], lambda r: {}, lambda r: [[[[[]]]]], lambda r: "2024-02-30", lambda r: "../../etc/passwd",
    lambda r: {"$ref": "#"}, lambda r: "99214" * 3, lambda r: ["F33.1"] * 40,
]


def _mutate_claim(claim: dict, rng: random.Random) -> Any:
    claim = json.loads(json.dumps(claim))
    kind = rng.randrange(6)
    if kind == 0 and claim:
        del claim[rng.choice(list(claim))]
    elif kind == 1:
        claim[rng.choice(list(claim) + ["extra"])] = rng.choice(ODD_VALUES)(rng)
    elif kind == 2 and claim.get("lines"):
        line = rng.choice(claim["lines"])
        line[rng.choice(["code", "units", "charge", "modifiers", "service_date", "diagnosis_pointers"])] = \
            rng.choice(ODD_VALUES)(rng)
    elif kind == 3:
        nested: Any = "x"
        for _ in range(rng.choice([50, 2000, 20_000])):
            nested = [nested]
        claim["encounter"] = nested
    elif kind == 4:
        return rng.choice(ODD_VALUES)(rng)  # a claim that is not an object
    return claim


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value)
    except (RecursionError, ValueError):
        return "[" * 5000 + "]" * 5000


def json_input(rng: random.Random) -> bytes:
    claims = [_mutate_claim(rng.choice(BASE), rng) if rng.random() < 0.5 else rng.choice(BASE)
              for _ in range(rng.randrange(1, 6))]
    shape = rng.randrange(3)
    text = _dumps(claims if shape == 0 else {"claims": claims} if shape == 1 else claims[0])
    data = text.encode("utf-8", "surrogatepass")
    damage = rng.randrange(6)
    if damage == 0:
        data = data[: rng.randrange(1, len(data) + 1)]
    elif damage == 1:
        data = b"\xef\xbb\xbf" + data
    elif damage == 2:
        at = rng.randrange(len(data))
        data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
    return data


def jsonl_input(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randrange(1, 8)):
        line = _dumps(_mutate_claim(rng.choice(BASE), rng) if rng.random() < 0.4 else rng.choice(BASE))
        raw = line.encode("utf-8", "surrogatepass")
        if rng.random() < 0.1:
            raw = raw[: len(raw) // 2] + b"\xff\xfe" + raw[len(raw) // 2:]
        lines.append(raw)
    data = b"\n".join(lines)
    return (b"\xef\xbb\xbf" + data) if rng.random() < 0.1 else data


def x12_input(rng: random.Random) -> bytes:
    text = rng.choice(X12).read_text()
    segments = text.split("~")
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(5)
        if kind == 0:
            text = text[: rng.randrange(len(text))]
        elif kind == 1:
            del segments[rng.randrange(len(segments))]
            text = "~".join(segments)
        elif kind == 2:
            chars = list(text)
            for _ in range(rng.randrange(1, 20)):
                chars[rng.randrange(len(chars))] = chr(rng.randrange(32, 127))
            text = "".join(chars)
        elif kind == 3:
            text = text.replace("*", rng.choice(["|", "~", ":", "**"]), rng.randrange(1, 40))
        else:
            i = rng.randrange(len(segments))
            segments.insert(i, segments[i] * rng.randrange(2, 50))
            text = "~".join(segments)
    return text.encode("utf-8", "replace")


def yaml_input(rng: random.Random, sources: dict[Path, bytes]) -> bytes:
    data = rng.choice(list(sources.values()))
    kind = rng.randrange(7)
    if kind == 0:
        return data[: rng.randrange(len(data))]
    if kind == 1:
        at = rng.randrange(len(data))
        return data[:at] + bytes([rng.randrange(128, 256)]) + data[at:]
    if kind == 2:
        return data + b"\nbomb:\n" + b"".join(
            f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else 'x'}]\n".encode() for i in range(10))
    if kind == 3:
        return b"rules: " + b"[" * rng.choice([100, 5000]) + b"]" * 5000
    if kind == 4:
        lines = data.split(b"\n")
        rng.shuffle(lines)
        return b"\n".join(lines)
    if kind == 5:
        chars = bytearray(data)
        for _ in range(rng.randrange(1, 10)):
            chars[rng.randrange(len(chars))] = rng.choice(b":-[]{}&*!|>'\"# \n\t")
        return bytes(chars)
    return data.replace(b"2024-", b"2024-13-", 1)


@dataclass
class Tally:
    inputs: dict[str, int] = field(default_factory=dict)
    claims: int = 0
    invalid: int = 0
    slowest: float = 0.0
    failures: list[str] = field(default_factory=list)

    def add(self, kind: str, seconds: float) -> None:
        self.inputs[kind] = self.inputs.get(kind, 0) + 1
        self.slowest = max(self.slowest, seconds)
        if seconds > SLOW_SECONDS:
            self.failures.append(f"{kind} input {self.inputs[kind]}: took {seconds:.1f} s")


def check_results(results: list[dict], tally: Tally, where: str) -> None:
    for result in results:
        tally.claims += 1
        if result["status"] == "invalid":
            tally.invalid += 1
            if not result.get("errors") or not all(e.get("field") and e.get("reason") for e in result["errors"]):
                tally.failures.append(f"{where}: an invalid claim without a named field")
        elif result["status"] not in ("clean", "review", "reject"):
            tally.failures.append(f"{where}: status {result['status']!r}")


def run(count: int, seed: str, workdir: Path, client: Any = None, auth: dict | None = None) -> Tally:
    """``count`` inputs through the file pipeline (and the HTTP app when ``client`` is given)."""
    from engine.pipeline import scrub_files
    from engine.policy.loader import _Loader, bundled_policies, load_policies
    from engine.policy.yamlsrc import PolicyError
    from engine.reports.writers import JsonLinesWriter

    import shutil

    policy = load_policies()
    tree = workdir / "policies"
    if not tree.exists():
        shutil.copytree(bundled_policies(), tree)
    sources = [p for p in tree.rglob("*.yaml") if p.name not in ("payers.yaml", "taxonomy.yaml")]
    originals = {p: p.read_bytes() for p in sources}
    rng = random.Random(seed)
    tally = Tally()
    makers = {"json": (json_input, ".json"), "jsonl": (jsonl_input, ".jsonl"), "x12": (x12_input, ".837"),
              "yaml": (lambda r: yaml_input(r, originals), ".yaml")}
    for n in range(count):
        kind = rng.choice(list(makers))
        make, suffix = makers[kind]
        data = make(rng)
        if kind == "yaml":  # in place of the file it was made from, so the tree's checks apply
            path = rng.choice(sources)
            for original, content in originals.items():
                original.write_bytes(content)
        else:
            path = workdir / f"input-{n % 50}{rng.choice([suffix, suffix, '.txt'])}"
        path.write_bytes(data)
        started = time.monotonic()
        try:
            if kind == "yaml":
                loader = _Loader(tree)
                loader.load_payers()
                try:
                    loader.load_file(path)
                except PolicyError:
                    pass
                if any(not str(e).split(":", 2)[1].isdigit() for e in loader.errors):
                    tally.failures.append(f"yaml input {n}: an error without file:line")
            else:
                out = workdir / "out.jsonl"
                scrub_files([path], policy, KNOWN, JsonLinesWriter(policy.digest, KNOWN, out), workers=1)
                lines = [json.loads(line) for line in out.read_text().splitlines()]
                check_results(lines[:-1], tally, f"{kind} input {n}")
                if client is not None:
                    response = client.post("/v1/scrub?store=false", content=data, headers=auth)
                    if response.status_code >= 500:
                        tally.failures.append(f"{kind} input {n}: HTTP {response.status_code}")
                    elif response.status_code == 200:
                        check_results(response.json()["claims"], tally, f"{kind} input {n} over HTTP")
        except Exception as exc:  # any exception here is a crash the user would see as a traceback
            tally.failures.append(f"{kind} input {n}: {type(exc).__name__}")
        tally.add(kind, time.monotonic() - started)
    return tally
