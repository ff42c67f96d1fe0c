"""Batches of any size: streamed outputs, chunks, workers, a Dask LocalCluster, warehouse input, the store in chunks."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from engine.claims import Claim, InvalidClaim
from engine.batch import scrub_partition
from engine.cli import app
from engine.pipeline import read_claim_files, scrub_files
from engine.scrub import scrub
from engine.store import Store
from benchmarks.synthetic import synthetic_claims
from engine.reports.writers import JsonLinesWriter, JsonWriter, ParquetWriter

from .conftest import ROOT, judged

KNOWN = dt.date(2026, 11, 27)
EXAMPLES = ROOT / "examples" / "claims.json"
TUVA = ROOT / "tests" / "fixtures" / "tuva" / "medical_claim.csv"
runner = CliRunner()


def case_batch(policy, tmp_path) -> Path:
    """Every policy case claim (and its history claims) plus the examples, as one JSON Lines file."""
    lines = [json.dumps(c) for c in json.loads(EXAMPLES.read_text())]
    for n, case in enumerate(policy.cases):
        for claim in [*case.history, case.claim]:
            lines.append(json.dumps(dict(claim, id=f"K{n}-{claim.get('id', 'x')}")))
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def in_memory(policy, path: Path) -> list[dict]:
    return [c.as_dict() for c in scrub(read_claim_files([path], policy), policy, KNOWN).claims]


def test_streamed_json_jsonl_and_parquet_equal_the_in_memory_result(policy, tmp_path):
    path = case_batch(policy, tmp_path)
    expected = in_memory(policy, path)
    assert sum(len(c.get("findings", ())) for c in expected) > 150  # the batch fires rules: not a vacuous match
    for pretty in (False, True):
        out = tmp_path / f"r{pretty}.json"
        run = scrub_files([path], policy, KNOWN, JsonWriter(policy.digest, KNOWN, out, pretty), chunk_size=37)
        document = json.loads(out.read_text())
        assert document["claims"] == expected
        assert document["summary"] == run.summary.counts and document["known_on"] == "2026-11-27"
    out = tmp_path / "r.jsonl"
    scrub_files([path], policy, KNOWN, JsonLinesWriter(policy.digest, KNOWN, out), chunk_size=37)
    *claims, tail = [json.loads(line) for line in out.read_text().splitlines()]
    assert claims == expected and tail["summary"]["claims"] == len(expected)
    scrub_files([path], policy, KNOWN, ParquetWriter(policy.digest, KNOWN, tmp_path / "pq"), chunk_size=37)
    findings = pq.read_table(tmp_path / "pq" / "findings.parquet").to_pylist()
    claims_table = pq.read_table(tmp_path / "pq" / "claims.parquet").to_pylist()
    assert [(r["claim_id"], r["status"]) for r in claims_table] == [(c["id"], c["status"]) for c in expected]
    rows = [(r["position"], r["rule"], r["line"], r["severity"], r["carc"], r["fix_action"]) for r in findings if r["rule"]]
    want = [(p, f["rule"], f["line"], f["severity"], f["carc"], (f["fix"] or {}).get("action"))
            for p, c in enumerate(expected, 1) for f in c.get("findings", ())]
    assert rows == want
    # One row per claim without findings, so every claim is in the flat table.
    assert {r["position"] for r in findings} == set(range(1, len(expected) + 1))


def test_a_duplicate_is_found_across_chunks_whatever_the_order(policy, tmp_path):
    first = {"id": "D-1", "payer": "commercial", "service_date": "2024-03-04", "patient": {"id": "P-7"},
             "lines": [{"code": "99213"}]}
    others = [{"id": f"O-{n}", "payer": "commercial", "service_date": "2024-03-04", "patient": {"id": f"Q-{n}"},
               "lines": [{"code": "99213"}]} for n in range(5)]
    # The later claim on an earlier date comes first in the file: it is the first, the other the duplicate.
    second = dict(first, id="D-2", service_date="2024-03-04")
    path = tmp_path / "dup.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in [second, *others, first]) + "\n")
    out = tmp_path / "dup.out.jsonl"
    scrub_files([path], policy, KNOWN, JsonLinesWriter(policy.digest, KNOWN, out), chunk_size=2)
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines()[:-1])}
    assert [f["rule"] for f in judged(results["D-1"]["findings"])] == ["cpt.duplicate-line"]
    assert judged(results["D-2"]["findings"]) == []
    assert results == {c["id"]: c for c in in_memory(policy, path)}


def test_two_workers_and_a_local_cluster_give_the_serial_result_in_order(policy, tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in synthetic_claims(1500, seed=5)) + "\n")
    outputs = {}
    for name, extra in [("serial", {"workers": 1}), ("processes", {"workers": 2}),
                        ("dask", {"workers": 2, "dask": True})]:
        out = tmp_path / f"{name}.jsonl"
        run = scrub_files([path], policy, KNOWN, JsonLinesWriter(policy.digest, KNOWN, out), chunk_size=200, **extra)
        assert run.workers == extra["workers"]
        outputs[name] = out.read_bytes()
    assert outputs["serial"] == outputs["processes"] == outputs["dask"]
    lines = outputs["serial"].splitlines()
    assert [json.loads(line)["id"] for line in lines[:-1]] == [f"B-{n}" for n in range(1500)]


def test_the_partition_function_is_its_own_history(policy):
    claim = {"id": "S-1", "payer": "commercial", "service_date": "2024-03-04", "patient": {"id": "P-1"},
             "lines": [{"code": "99213"}]}
    records = scrub_partition([claim, dict(claim, id="S-2")], policy, KNOWN)
    assert [r["result"]["status"] for r in records] == ["clean", "reject"]
    assert records[1]["result"]["findings"][0]["rule"] == "cpt.duplicate-line"
    assert scrub_partition([dict(claim, id="S-3")], policy, KNOWN)[0]["result"]["status"] == "clean"


@pytest.mark.parametrize("as_parquet", [False, True])
def test_a_tuva_medical_claim_table_scrubs_to_the_expected_findings(policy, tmp_path, as_parquet):
    path = TUVA
    if as_parquet:
        path = tmp_path / "medical_claim.parquet"
        table = pacsv.read_csv(TUVA, convert_options=pacsv.ConvertOptions(
            column_types={"place_of_service_code": pa.string(), "rendering_npi": pa.string(),
                          "billing_npi": pa.string()}))
        pq.write_table(table, path)
    out = tmp_path / "tuva.jsonl"
    scrub_files([path], policy, KNOWN, JsonLinesWriter(policy.digest, KNOWN, out))
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines()[:-1])}
    rules = {cid: sorted(f["rule"] for f in judged(r.get("findings", ()))) for cid, r in results.items()}
    assert rules["TV-1"] == ["medicare.telephone-em-deleted"]  # "Medicare" -> medicare through names:
    assert "commercial.telehealth-indicator" in rules["TV-2"]  # "Cigna Healthcare", POS "2" read as 02
    assert rules["TV-3"] == ["cpt.psychotherapy-minutes-short"]  # two rows, one claim; minutes not in the table
    assert rules["TV-4"] == ["cpt.duplicate-line"]  # same person, same code, same day as TV-3
    assert results["TV-5"]["status"] == "invalid" and results["TV-5"]["errors"][0]["field"] == "claim_type"
    assert results["TV-6"]["status"] == "invalid" and results["TV-6"]["errors"][0]["field"] == "payer"


def test_encounters_fill_what_the_warehouse_table_lacks(policy, tmp_path):
    encounters = tmp_path / "enc.json"
    encounters.write_text(json.dumps({"TV-3": {"encounter": {"total_minutes": 45, "psychotherapy_minutes": 20,
                                                             "level_basis": "mdm", "mdm": "moderate"}}}))
    out = tmp_path / "tuva.jsonl"
    scrub_files([TUVA], policy, KNOWN, JsonLinesWriter(policy.digest, KNOWN, out), encounters=encounters)
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines()[:-1])}
    assert results["TV-3"]["status"] == "clean"


def test_scrub_command_writes_jsonl_and_parquet_and_refuses_a_missing_folder(tmp_path):
    result = runner.invoke(app, ["scrub", str(EXAMPLES), "--format", "jsonl", "--no-store", "--known-on", "2026-11-27"])
    assert result.exit_code == 1
    *claims, tail = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(claims) == 6 and tail["summary"]["invalid"] == 1 and tail["known_on"] == "2026-11-27"
    out = tmp_path / "out"
    result = runner.invoke(app, ["scrub", str(EXAMPLES), "-f", "parquet", "-o", str(out), "--no-store"])
    assert result.exit_code == 1 and (out / "findings.parquet").is_file() and (out / "claims.parquet").is_file()
    assert pq.read_table(out / "claims.parquet").num_rows == 6
    missing = tmp_path / "nowhere" / "r.json"
    result = runner.invoke(app, ["scrub", str(EXAMPLES), "-f", "json", "-o", str(missing), "--no-store"])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["scrub", str(EXAMPLES), "-f", "parquet", "--no-store"])
    assert result.exit_code == 2
    report = tmp_path / "r.json"
    result = runner.invoke(app, ["scrub", str(EXAMPLES), "-f", "json", "-o", str(report), "--no-store",
                                 "--encounters", str(tmp_path / "missing.json")])
    assert result.exit_code == 2 and not report.exists() and not list(tmp_path.glob(".r.json.*"))


def test_a_failed_run_leaves_no_file_and_no_run(policy, tmp_path, db_url):
    store = Store(db_url)
    out = tmp_path / "r.json"

    class Failing(JsonWriter):
        calls = 0

        def write(self, records):
            Failing.calls += 1
            if Failing.calls == 2:
                raise OSError("disk full")
            super().write(records)

    path = case_batch(policy, tmp_path)
    with pytest.raises(OSError):
        scrub_files([path], policy, KNOWN, Failing(policy.digest, KNOWN, out, False), store=store, chunk_size=20)
    assert not out.exists() and list(tmp_path.glob(".r.json.*")) == []
    assert store.runs() == [] and store.max_claim_record() == 0


def test_a_large_run_keeps_its_files_not_its_text_and_replays(policy, tmp_path, db_url, monkeypatch):
    from engine import store as store_module
    from engine.pipeline import replay

    monkeypatch.setattr(store_module, "KEEP_INPUT_CLAIMS", 10)
    store = Store(db_url)
    path = case_batch(policy, tmp_path)
    run = scrub_files([path], policy, KNOWN, JsonLinesWriter(policy.digest, KNOWN, tmp_path / "o.jsonl"),
                      store=store, chunk_size=50)
    (stored_run,) = store.runs()
    assert stored_run.id == run.run_id and stored_run.input == "" and str(path.resolve()) in stored_run.sources
    _, stored, fresh = replay(store, run.run_id)
    assert stored == fresh and len(fresh) > 150
    path.write_text(path.read_text() + json.dumps({"id": "NEW", "payer": "medicare", "service_date": "2024-01-02",
                                                   "lines": [{"code": "99213"}]}) + "\n")
    from engine.pipeline import ReplayError

    with pytest.raises(ReplayError):
        replay(store, run.run_id)


def test_a_killed_chunked_run_leaves_nothing_a_user_sees(tmp_path, db_url):
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in synthetic_claims(6000, seed=9)) + "\n")
    env = dict(os.environ, PAYERPOLICY_DB=db_url)
    process = subprocess.Popen([sys.executable, "-m", "engine.cli", "scrub", str(path), "--format", "jsonl",
                                "--workers", "1", "--chunk-size", "100", "-o", str(tmp_path / "out.jsonl")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store(db_url)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # wait until some chunks of the run are in the store
            with store.engine.connect() as connection:
                from sqlalchemy import text

                stored = connection.execute(text("SELECT count(*) FROM findingrow")).scalar()
            if stored and stored > 500:
                break
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(30)
    assert store.runs() == []
    assert not (tmp_path / "out.jsonl").exists()
    # Its claims are not history for the next run: the same claim again is not a duplicate.
    again = tmp_path / "again.jsonl"
    again.write_text(json.dumps(dict(json.loads(path.read_text().splitlines()[0]), id="AGAIN-1")) + "\n")
    result = runner.invoke(app, ["scrub", str(again), "-f", "jsonl", "--db", db_url, "--known-on", "2026-11-27"])
    first = json.loads(result.stdout.splitlines()[0])
    assert "cpt.duplicate-line" not in [f["rule"] for f in first.get("findings", ())]
    assert len(store.runs()) == 1


def test_whatif_and_denials_on_two_workers_equal_one(policy, monkeypatch):
    from engine import denials
    from engine.claims import parse_claims_text
    from benchmarks.denials_bench import generate
    from engine.whatif import knowledge_dates

    items = parse_claims_text("\n".join(json.dumps(c) for c in synthetic_claims(2500, seed=4)))
    one = knowledge_dates(items, policy, dt.date(2025, 10, 20), KNOWN, workers=1)
    two = knowledge_dates(items, policy, dt.date(2025, 10, 20), KNOWN, workers=2)
    assert one.as_dict() == two.as_dict() and len(one.changed) >= 5

    monkeypatch.setattr(denials, "CHUNK", 300)
    claims, remit_csv, _ = generate(1400, 8)
    reports = [denials.analyze(parse_claims_text(json.dumps(claims)), denials.read_remit_csv(remit_csv), policy,
                               KNOWN, workers=n) for n in (1, 2)]
    assert reports[0].as_dict() == reports[1].as_dict()
    assert reports[0].totals()["lines"] > 1400


def test_parquet_folders_at_fsspec_urls_in_and_out(tmp_path):
    """Warehouse folders need not be local: an fsspec URL (here the in-memory filesystem) works both ways."""
    import io

    import fsspec

    fs = fsspec.filesystem("memory")
    claims = synthetic_claims(60, seed=6)
    for part in range(2):
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(claims[part * 30:(part + 1) * 30]), buffer)
        fs.pipe(f"/warehouse/claims/part-{part}.parquet", buffer.getvalue())
    result = runner.invoke(app, ["scrub", "memory://warehouse/claims/", "-f", "parquet", "-o", "memory://warehouse/out/",
                                 "--no-store", "--known-on", "2026-11-27"])
    assert result.exit_code in (0, 1), result.output
    with fs.open("/warehouse/out/claims.parquet", "rb") as handle:
        table = pq.read_table(handle).to_pylist()
    assert [r["claim_id"] for r in table] == [c["id"] for c in claims]
    local = tmp_path / "claims.jsonl"
    local.write_text("\n".join(json.dumps(c) for c in claims) + "\n")
    expected = runner.invoke(app, ["scrub", str(local), "-f", "jsonl", "--no-store", "--known-on", "2026-11-27"])
    statuses = [json.loads(line)["status"] for line in expected.stdout.splitlines()[:-1]]
    assert [r["status"] for r in table] == statuses
    missing = runner.invoke(app, ["scrub", "memory://warehouse/nothing/", "--no-store"])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_files_are_read_by_their_content_not_their_name(policy, tmp_path):
    """JSON saved as .txt is JSON; a BOM is accepted; one bad line of JSON Lines is one invalid claim."""
    from engine.pipeline import read_claim_files

    good = {"id": "N-1", "payer": "medicare", "service_date": "2024-03-04", "lines": [{"code": "99213"}]}
    as_txt = tmp_path / "claims.txt"
    as_txt.write_text(json.dumps([good]))
    with_bom = tmp_path / "bom.json"
    with_bom.write_bytes(b"\xef\xbb\xbf" + json.dumps([good]).encode())
    lines = tmp_path / "mixed.jsonl"
    lines.write_bytes(b"\xef\xbb\xbf" + json.dumps(good).encode() + b'\n{"id": "\xff\xfe"}\n'
                      + json.dumps(dict(good, id="N-2")).encode() + b"\n")
    (a,), (b,) = read_claim_files([as_txt], policy), read_claim_files([with_bom], policy)
    assert isinstance(a, Claim) and isinstance(b, Claim)
    first, bad, third = read_claim_files([lines], policy)
    assert (first.id, third.id) == ("N-1", "N-2")
    assert isinstance(bad, InvalidClaim) and "line 2" in bad.errors[0].reason
