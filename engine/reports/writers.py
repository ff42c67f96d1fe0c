"""Scrub results written as they arrive: JSON, JSON Lines, Parquet, HTML and the table.

Every writer takes result records a chunk at a time (see ``batch.judge_chunk``) and
holds none of them, so memory does not grow with the batch. A file is written beside
its target and renamed into place when the run ends, so a failed run never leaves a
half-written report behind.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from ..money import ZERO, show_money
from .reasons import carc_text
from .text import STATUS_WORDS, claim_lines, fix_text, summary_line



class OutputError(Exception):
    """The report could not be written (exit code 2); the message names the path, never claim data."""


class _Target:
    """A file written under a temporary name and renamed into place on commit; or stdout."""

    def __init__(self, path: Path | None, binary: bool = True):
        self.path = path
        self.temp: Path | None = None
        if path is None:
            self.handle: IO = sys.stdout.buffer if binary else sys.stdout
            return
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"{path}: the folder {folder} does not exist")
        if path.exists() and not path.is_file():
            # A device, a pipe or /dev/stdout: written in place (renaming over it would replace it).
            try:
                self.handle = path.open("wb" if binary else "w", encoding=None if binary else "utf-8")
            except OSError as exc:
                raise OutputError(f"{path}: cannot write there ({exc.strerror})") from None
            return
        try:
            fd, name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".partial")
        except OSError as exc:
            raise OutputError(f"{path}: cannot write there ({exc.strerror})") from None
        self.temp = Path(name)
        self.handle = os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8")

    def write(self, data: Any) -> None:
        try:
            self.handle.write(data)
        except OSError as exc:
            raise OutputError(f"{self.path or 'standard output'}: write failed ({exc.strerror})") from None

    def commit(self) -> None:
        try:
            self.handle.flush()
            if self.temp is None and self.path is not None:
                self.handle.close()
            if self.temp is not None:
                self.handle.close()
                os.replace(self.temp, self.path)
                self.temp = None
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.path or 'standard output'}: write failed ({exc.strerror})") from None

    def abort(self) -> None:
        if self.temp is not None:
            try:
                self.handle.close()
            except OSError:
                pass
            self.temp.unlink(missing_ok=True)
            self.temp = None
        elif self.path is not None:
            try:
                self.handle.close()
            except OSError:  # a full device refuses the rest of its buffer: the run has failed anyway
                pass


class Writer:
    shows_charges = False  # whether its records need each claim's charges and charges at risk

    def __init__(self, policy_version: str, known_on: dt.date):
        self.policy_version = policy_version
        self.known_on = known_on

    def write(self, records: list[dict]) -> None:
        raise NotImplementedError

    def close(self, summary: dict[str, int], run_id: str | None, files: list[dict] = ()) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        pass


class JsonWriter(Writer):
    """The DESIGN.md document, written claim by claim: compact, or indented with ``pretty``."""

    def __init__(self, policy_version: str, known_on: dt.date, path: Path | None, pretty: bool):
        super().__init__(policy_version, known_on)
        self.out = _Target(path)
        self.pretty = pretty
        self.count = 0
        head = {"policy_version": policy_version, "known_on": known_on.isoformat()}
        if pretty:
            self.out.write(orjson.dumps(head, option=orjson.OPT_INDENT_2)[:-2] + b',\n  "claims": [')
        else:
            self.out.write(orjson.dumps(head)[:-1] + b',"claims":[')

    def write(self, records: list[dict]) -> None:
        parts = []
        for record in records:
            sep = b"," if self.count else b""
            self.count += 1
            if self.pretty:
                body = orjson.dumps(record["result"], option=orjson.OPT_INDENT_2).replace(b"\n", b"\n    ")
                parts.append(sep + b"\n    " + body)
            else:
                parts.append(sep + orjson.dumps(record["result"]))
        self.out.write(b"".join(parts))

    def close(self, summary: dict[str, int], run_id: str | None, files: list[dict] = ()) -> None:
        if self.pretty:
            listed = orjson.dumps(list(files), option=orjson.OPT_INDENT_2).replace(b"\n", b"\n  ")
            tail = orjson.dumps(summary, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n  ")
            self.out.write((b"\n  ]" if self.count else b"]") + b',\n  "files": ' + listed
                           + b',\n  "summary": ' + tail + b"\n}\n")
        else:
            self.out.write(b'],"files":' + orjson.dumps(list(files)) + b',"summary":' + orjson.dumps(summary) + b"}\n")
        self.out.commit()

    def abort(self) -> None:
        self.out.abort()


class JsonLinesWriter(Writer):
    """One claim result per line, then one line with the summary."""

    def __init__(self, policy_version: str, known_on: dt.date, path: Path | None):
        super().__init__(policy_version, known_on)
        self.out = _Target(path)

    def write(self, records: list[dict]) -> None:
        self.out.write(b"".join(orjson.dumps(r["result"]) + b"\n" for r in records))

    def close(self, summary: dict[str, int], run_id: str | None, files: list[dict] = ()) -> None:
        tail = {"summary": summary, "files": list(files), "policy_version": self.policy_version,
                "known_on": self.known_on.isoformat()}
        if run_id:
            tail["run"] = run_id
        self.out.write(orjson.dumps(tail) + b"\n")
        self.out.commit()

    def abort(self) -> None:
        self.out.abort()


class HtmlWriter(Writer):
    """One self-contained page; rows are spooled to disk so the summary can head the page."""

    shows_charges = True

    def __init__(self, policy_version: str, known_on: dt.date, path: Path | None):
        super().__init__(policy_version, known_on)
        self.out = _Target(path, binary=False)
        self.rows = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.charges = self.at_risk = ZERO

    def write(self, records: list[dict]) -> None:
        e = html.escape
        rows = []
        for record in records:
            claim = record["result"]
            label = e(claim["id"] or f"claim {record['position']}")
            facts = [e(STATUS_WORDS.get(claim["status"], claim["status"]))]  # "history" stays itself
            facts += [e(record["payer"])] if record.get("payer") else []
            facts += [f"date of service {e(record['service_date'])}"] if record.get("service_date") else []
            if record.get("charges"):
                facts.append(f"charges {show_money(Decimal(record['charges']))}")
                if record.get("at_risk") and Decimal(record["at_risk"]):
                    facts.append(f"at risk {show_money(Decimal(record['at_risk']))}")
                    self.at_risk += Decimal(record["at_risk"])
                self.charges += Decimal(record["charges"])
            rows.append(f'<tr class="claim {claim["status"]}"><th colspan="6">{label} — {" · ".join(facts)}</th></tr>')
            for kind, key in (("invalid", "errors"), ("x12 note", "notes")):
                for err in claim.get(key, ()):
                    rows.append(f'<tr><td></td><td></td><td>{kind}</td><td>{e(err["field"])}</td>'
                                f'<td colspan="2">{e(err["reason"])}</td></tr>')
            for f in claim.get("findings", ()):
                carc = e(f"{f['group'] or ''}-{f['carc']}: {carc_text(f['carc'])}" if f["carc"] else "")
                rows.append(
                    f'<tr class="{f["severity"]}"><td>{f["line"]}</td><td>{e(f["code"])}</td><td>{f["severity"]}</td>'
                    f'<td>{e(f["rule"])}<br><small>{e(f["source"])} · {f["confidence"]}</small></td><td>{carc}</td>'
                    f'<td>{e(f["message"])}<br><small>{e(fix_text(f["fix"]))}</small></td></tr>')
        self.rows.write("\n".join(rows) + "\n")

    def close(self, summary: dict[str, int], run_id: str | None, files: list[dict] = ()) -> None:
        e = html.escape
        s = summary
        self.out.write(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>payerpolicy scrub</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}
tr.claim th{{background:#f4f4f4}} tr.reject th{{color:#b00}} tr.review th{{color:#a60}} tr.clean th{{color:#070}}
tr.error td:nth-child(3){{color:#b00}} tr.warning td:nth-child(3){{color:#a60}} small{{color:#666}}
</style></head><body>
<h1>Scrub report</h1>
<p>Known on {self.known_on} · policy <code>{e(self.policy_version)}</code></p>
<p>{s['claims']:,} claim{'' if s['claims'] == 1 else 's'}: {s['clean']} clean, {s['review']} review, {s['reject']} reject, {s['invalid']} invalid</p>
<p id="at-risk">Charges at risk (lines with a denial): <strong>{show_money(self.at_risk)}</strong> of {show_money(self.charges)} billed.</p>
""" + "".join(f"<p class=\"file\">File {e(f['name'])}" + (f", segment {f['segment']}" if f["segment"] else "")
              + f": {e(f['reason'])}</p>\n" for f in files) + """<table><tr><th>line</th><th>code</th><th>severity</th><th>rule</th><th>CARC</th><th>message / fix</th></tr>
""")
        self.rows.seek(0)
        for block in iter(lambda: self.rows.read(1 << 16), ""):
            self.out.write(block)
        self.out.write("</table></body></html>\n")
        self.rows.close()
        self.out.commit()

    def abort(self) -> None:
        self.rows.close()
        self.out.abort()


class TableWriter(Writer):
    """The readable report: each claim printed as it is judged, the summary last."""

    def __init__(self, policy_version: str, known_on: dt.date, console: Any, path: Path | None = None):
        from rich.console import Console

        super().__init__(policy_version, known_on)
        self.out = _Target(path, binary=False) if path is not None else None
        self.console = Console(file=self.out.handle, width=160) if self.out is not None else console

    def write(self, records: list[dict]) -> None:
        for record in records:
            for text in claim_lines(record["result"], record["position"]):
                self.console.print(text)

    def close(self, summary: dict[str, int], run_id: str | None, files: list[dict] = ()) -> None:
        for f in files:
            where = f"{f['name']}" + (f" segment {f['segment']}" if f["segment"] else "")
            self.console.print(f"[magenta]FILE[/] {where}: {f['reason']}", highlight=False)
        self.console.print(summary_line(summary, self.known_on, self.policy_version, run_id, len(files)),
                           highlight=False)
        if self.out is not None:
            self.out.commit()

    def abort(self) -> None:
        if self.out is not None:
            self.out.abort()


FINDING_COLUMNS = ["position", "claim_id", "payer", "state", "service_date", "status", "line", "code", "rule",
                   "revision", "layer", "severity", "carc", "group", "rarc", "message", "fix_action", "fix_code",
                   "source", "confidence", "known_on", "policy_version"]
CLAIM_COLUMNS = ["position", "claim_id", "payer", "state", "service_date", "status", "findings", "errors",
                 "known_on", "policy_version"]


def table_columns(records: list[dict], known_on: dt.date, policy_version: str) -> tuple[dict[str, list], dict[str, list]]:
    """The findings table (a row per finding, and one per claim without findings) and the claims
    table, as columns: what ``--format parquet`` writes and the Python API returns."""
    findings: dict[str, list] = {c: [] for c in FINDING_COLUMNS}
    claims: dict[str, list] = {c: [] for c in CLAIM_COLUMNS}
    for record in records:
        result = record["result"]
        day = dt.date.fromisoformat(record["service_date"]) if record.get("service_date") else None
        common = {"position": record["position"], "claim_id": result["id"], "payer": record.get("payer"),
                  "state": record.get("state"), "service_date": day, "status": result["status"],
                  "known_on": known_on, "policy_version": policy_version}
        for key, value in common.items():
            claims[key].append(value)
        claims["findings"].append(len(result.get("findings", ())))
        claims["errors"].append([f"{e['field']}: {e['reason']}" for e in result.get("errors", ())])
        for f in result.get("findings", ()) or [None]:
            for key, value in common.items():
                findings[key].append(value)
            fix = (f or {}).get("fix") or {}
            for key in ("line", "code", "rule", "revision", "layer", "severity", "carc", "group", "message",
                        "source", "confidence"):
                findings[key].append(f[key] if f else None)
            findings["rarc"].append(list(f["rarc"]) if f else None)
            findings["fix_action"].append(fix.get("action"))
            findings["fix_code"].append(fix.get("to"))
    return findings, claims


def parquet_paths(output: str | Path) -> tuple[str, str]:
    """``out.parquet`` -> itself and ``out.claims.parquet``; a folder -> its findings.parquet and claims.parquet."""
    text = str(output)
    if text.endswith(".parquet"):
        return text, text[: -len(".parquet")] + ".claims.parquet"
    if "://" not in text:
        Path(text).mkdir(parents=True, exist_ok=True)
    return text.rstrip("/") + "/findings.parquet", text.rstrip("/") + "/claims.parquet"


class ParquetWriter(Writer):
    """A flat findings table (one row per finding, one per claim without findings) and a claims table."""

    def __init__(self, policy_version: str, known_on: dt.date, output: str | Path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(policy_version, known_on)
        self.pa = pa
        text = pa.string()
        self.finding_schema = pa.schema(
            [("position", pa.int64()), ("claim_id", text), ("payer", text), ("state", text),
             ("service_date", pa.date32()), ("status", text), ("line", pa.int32()), ("code", text), ("rule", text),
             ("revision", text), ("layer", text), ("severity", text), ("carc", text), ("group", text),
             ("rarc", pa.list_(text)), ("message", text), ("fix_action", text), ("fix_code", text),
             ("source", text), ("confidence", text), ("known_on", pa.date32()), ("policy_version", text)])
        self.claim_schema = pa.schema(
            [("position", pa.int64()), ("claim_id", text), ("payer", text), ("state", text),
             ("service_date", pa.date32()), ("status", text), ("findings", pa.int32()), ("errors", pa.list_(text)),
             ("known_on", pa.date32()), ("policy_version", text)])
        findings_path, claims_path = parquet_paths(output)
        self.targets = []
        self.writers = []
        self.remote: list[Any] = []  # files on an fsspec filesystem: written there directly, closed at the end
        for path, schema in ((findings_path, self.finding_schema), (claims_path, self.claim_schema)):
            if "://" in path:
                try:
                    import fsspec
                except ImportError:
                    raise OutputError(f"{output}: writing to a URL needs fsspec (pip install 'payerpolicy[cluster]')"
                                      ) from None

                sink = fsspec.open(path, "wb").open()
                self.remote.append(sink)
                self.targets.append(None)
            else:
                target = _Target(Path(path))
                sink = target.handle
                self.targets.append(target)
            self.writers.append(pq.ParquetWriter(sink, schema, compression="zstd"))

    def write(self, records: list[dict]) -> None:
        findings, claims = table_columns(records, self.known_on, self.policy_version)
        self.writers[0].write_table(self.pa.Table.from_pydict(findings, schema=self.finding_schema))
        self.writers[1].write_table(self.pa.Table.from_pydict(claims, schema=self.claim_schema))

    def close(self, summary: dict[str, int], run_id: str | None, files: list[dict] = ()) -> None:
        for writer in self.writers:
            writer.close()
        for handle in self.remote:
            if not handle.closed:
                handle.close()
        for target in self.targets:
            if target is not None:
                target.commit()

    def abort(self) -> None:
        for target in self.targets:
            if target is not None:
                target.abort()
