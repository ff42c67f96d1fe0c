"""X12: 837P claims in (and out), 835 remittances in, validated with pyx12, robust to bad input."""

import datetime as dt
import json
import random
import time
from decimal import Decimal

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from engine.claims import Claim, InvalidClaim, parse_claims_text
from engine.cli import app
from engine.pipeline import read_claim_files
from engine.x12.claim837 import read_837
from engine.x12.remit835 import read_835
from engine.x12.validate import validate
from engine.x12.write837 import write_837

from .conftest import ROOT, judged

FIX = ROOT / "tests" / "fixtures" / "x12"
runner = CliRunner()


def invoke(*args):
    with freeze_time("2026-11-27"):
        return runner.invoke(app, [str(a) for a in args])


# Samples the validator accepts as they are; the others carry implementation-guide errors
# (e.g. CLM05 without its facility-code qualifier) that a clearinghouse would reject.
VALID_837 = {"demo.autoaccident.837", "demo.cob.example3.B.837", "demo.cob.example3.C.837",
             "demo.drug.example10.1.837", "demo.drug.example10.2.837", "demo.drug.example10.3.837",
             "demo.example1.837", "demo.example2.837", "demo.example7.837", "demo.example8.837",
             "cob-primary-secondary.837", "medicare-crossover-medicaid.837", "line-rendering-rd8.837"}


@pytest.mark.parametrize("path", sorted(FIX.glob("*.837")), ids=lambda p: p.name)
def test_every_sample_837_parses_and_scrubs_end_to_end(path, policy):
    text = path.read_text()
    problems = validate(text)
    assert (problems == []) is (path.name in VALID_837)
    parsed = read_837(text, {}, policy.taxonomy)
    assert parsed.claims and not parsed.errors
    result = invoke("scrub", path, "--payer", "commercial", "--no-store", "--format", "json")
    assert result.exit_code in (0, 1), result.output
    data = json.loads(result.stdout)
    claims = data["claims"]
    # A file of N claims reports N claims: problems outside every claim go to files[], never claims.
    assert len(claims) == data["summary"]["claims"] == len(parsed.claims)
    assert all(c["id"] is not None for c in claims)
    for claim in claims:
        if path.name in VALID_837:
            assert claim["status"] != "invalid"
        elif claim["status"] == "invalid":
            assert any(e["field"].startswith(path.name + " segment ") for e in claim["errors"])


@pytest.mark.parametrize("path", sorted(FIX.glob("*.835")), ids=lambda p: p.name)
def test_every_sample_835_is_read(path):
    (remit,) = read_835(path.read_text())
    assert remit.claims and not remit.errors


def test_837_field_by_field(policy):
    (claim,) = read_837((FIX / "demo.example1.837").read_text(), {}, policy.taxonomy).claims
    assert claim["id"] == "26463774" and claim["payer"] == "x12:999996666"
    assert claim["place_of_service"] == "11" and claim["state"] == "FL"
    assert claim["service_date"] == "2006-10-03" and claim["diagnoses"] == ["0340", "V7389"]
    assert claim["patient"]["birth_date"] == "1973-05-01"
    assert claim["patient"]["id"].startswith("JS00111223333-")  # a dependent: member id + name hash
    assert "SMITH" not in json.dumps(claim, default=str) and "TED" not in json.dumps(claim, default=str)
    assert claim["billing_provider"] == {"npi": "1912301953", "type": "MD"}
    assert [(ln["code"], ln["charge"], ln["units"], ln["diagnosis_pointers"], ln.get("service_date"))
            for ln in claim["lines"]] == [("99213", 40.0, 1, [1], None), ("87070", 15.0, 1, [1], None),
                                           ("99214", 35.0, 1, [2], "2006-10-10"), ("86663", 10.0, 1, [2], "2006-10-10")]
    (drug,) = read_837((FIX / "demo.drug.example10.2.837").read_text(), {"999999999": "medicaid"}, policy.taxonomy).claims
    assert drug["id"] == "CLMNO12345" and drug["patient"] == {"id": "MBRID01234", "birth_date": "1943-05-01"}
    assert drug["lines"][0]["code"] == "S9500" and drug["lines"][0]["units"] == 7
    assert drug["lines"][0]["place_of_service"] == "12" and drug["state"] == "IL"


def test_835_field_by_field():
    (remit,) = read_835((FIX / "managed-care.835").read_text())
    assert (remit.payer_name, str(remit.production_date), remit.payment) == ("RUSHMORE LIFE", "2002-03-14", 945.0)
    first, second = remit.claims
    assert (first.claim_id, first.status, first.charge, first.paid, first.patient_responsibility,
            first.payer_claim_number) == ("5554555444", "1", 800.0, 450.0, 300.0, "94060555410000")
    assert [(a.group, a.carc, a.amount) for a in first.adjustments] == [("CO", "A2", 50.0)]
    (line,) = first.lines
    assert (line.code, line.charge, line.paid, str(line.service_date)) == ("99211", 800.0, 500.0, "2002-03-01")
    assert [(a.group, a.carc, a.amount) for a in line.adjustments] == [("PR", "1", 300.0)]
    assert [(a.group, a.carc, a.amount) for a in second.lines[0].adjustments] == [("PR", "1", 600.0), ("CO", "45", 50.0)]
    (cob,) = read_835((FIX / "cob-contractural-adjustment.835").read_text())
    (cline,) = cob.claims[0].lines
    assert cline.code == "55669" and [(a.group, a.carc, a.amount) for a in cline.adjustments] == [
        ("OA", "23", 516.0), ("OA", "94", -9.0)]


def test_cas_keeps_all_six_triplets():
    text = (FIX / "managed-care.835").read_text().replace(
        "CAS*CO*A2*50.00~", "CAS*CO*A2*50.00**45*1.00*2*B15*1.00**97*2.00**16*3.00**18*4.00*1~")
    (remit,) = read_835(text)
    assert [(a.carc, a.amount, a.quantity) for a in remit.claims[0].adjustments] == [
        ("A2", 50.0, None), ("45", 1.0, 2.0), ("B15", 1.0, None), ("97", 2.0, None), ("16", 3.0, None), ("18", 4.0, 1.0)]


def test_export_round_trip_validates_and_reads_back(policy, tmp_path):
    raw = [
        {"id": "RT-1", "payer": "medicare", "state": "OH", "service_date": "2025-02-03", "place_of_service": "10",
         "patient": {"id": "P-100", "birth_date": "1956-04-02"}, "prior_authorization": "PA-1",
         "rendering_provider": {"npi": "1234567893", "type": "MD"}, "billing_provider": {"npi": "1234567893", "type": "MD"},
         "diagnoses": ["F331", "I10"],
         "lines": [{"code": "99214", "modifiers": ["93"], "units": 1, "charge": 150.0, "diagnosis_pointers": [1, 2]},
                   {"code": "90833", "units": 1, "charge": 80.0, "diagnosis_pointers": [1],
                    "service_date": "2025-02-04"}]},
        {"id": "RT-2", "payer": "aetna", "state": "NY", "service_date": "2024-03-05", "place_of_service": "11",
         "patient": {"id": "P-104", "birth_date": "1990-07-07"},
         "rendering_provider": {"npi": "1234567893", "type": "NP"}, "billing_provider": {"npi": "1234567893", "type": "NP"},
         "diagnoses": ["F900"],
         "lines": [{"code": "99214", "units": 1, "charge": 150.0, "diagnosis_pointers": [1]}]},
    ]
    claims = parse_claims_text(json.dumps(raw))
    text = write_837(claims, policy, now=dt.datetime(2026, 11, 27, 9, 30))
    assert validate(text) == []
    path = tmp_path / "out.837"
    path.write_text(text)
    back = read_claim_files([path], policy)
    assert all(isinstance(c, Claim) for c in back)
    for original, read in zip(claims, back):
        assert read.model_dump(exclude_none=True) == original.model_dump(exclude_none=True)
    source = tmp_path / "in.json"
    source.write_text(json.dumps(raw))
    result = invoke("export", source)
    assert result.exit_code == 0 and validate(result.stdout) == []
    source.write_text(json.dumps(raw + [{"id": "RT-3", "payer": "aetna", "service_date": "2024-03-05",
                                         "lines": [{"code": "99213"}]}]))
    partial = invoke("export", source)
    assert partial.exit_code == 1 and "RT-3 not exported: an 837P needs at least one diagnosis" in partial.stderr


def test_a_claim_with_structural_errors_is_invalid_and_the_others_are_judged(policy, tmp_path):
    good = parse_claims_text(json.dumps([
        {"id": "S-1", "payer": "medicare", "service_date": "2025-02-03", "diagnoses": ["I10"],
         "lines": [{"code": "99442", "charge": 10}]},
        {"id": "S-2", "payer": "medicare", "service_date": "2025-02-03", "diagnoses": ["I10"],
         "rendering_provider": {"npi": "1234567893", "type": "MD"}, "lines": [{"code": "99213", "charge": 10}]}]))
    text = write_837(good, policy).replace("CLM*S-1*10.00", "CLM*S-1*1O.00")
    path = tmp_path / "bad.837"
    path.write_text(text)
    result = invoke("scrub", path, "--no-store", "--format", "json")
    data = json.loads(result.stdout)
    first, second = data["claims"]
    assert first["status"] == "invalid"
    assert any("segment" in e["field"] and "CLM02" in e["reason"] for e in first["errors"])
    assert "1O.00" not in result.stdout
    assert second["id"] == "S-2" and second["status"] == "clean"


def test_mixed_json_and_837_in_one_batch(policy, tmp_path):
    claims = parse_claims_text(json.dumps({"id": "M-1", "payer": "medicare", "service_date": "2019-06-03",
                                           "diagnoses": ["I10"], "lines": [{"code": "99442"}]}))
    (tmp_path / "a.837").write_text(write_837(claims, policy))
    (tmp_path / "b.json").write_text(json.dumps({"id": "M-2", "payer": "medicare", "service_date": "2024-06-03",
                                                 "lines": [{"code": "99213"}]}))
    data = json.loads(invoke("scrub", tmp_path / "a.837", tmp_path / "b.json", "--no-store", "--format", "json").stdout)
    assert [(c["id"], c["status"]) for c in data["claims"]] == [("M-1", "reject"), ("M-2", "clean")]


def test_encounter_side_file_supplies_what_837_lacks(policy, tmp_path):
    claims = parse_claims_text(json.dumps({"id": "E-1", "payer": "medicare", "service_date": "2025-10-15",
                                           "place_of_service": "10", "diagnoses": ["I10"],
                                           "lines": [{"code": "99213"}]}))
    (tmp_path / "c.837").write_text(write_837(claims, policy))
    (tmp_path / "enc.json").write_text(json.dumps({"E-1": {"encounter": {"modality": "video"},
                                                           "patient": {"location": "clinic"}}}))
    without = json.loads(invoke("scrub", tmp_path / "c.837", "--no-store", "--format", "json",
                                "--known-on", "2025-10-20").stdout)
    with_side = json.loads(invoke("scrub", tmp_path / "c.837", "--encounters", tmp_path / "enc.json", "--no-store",
                                  "--format", "json", "--known-on", "2025-10-20").stdout)
    # Without the side file the 837's POS 10 is all there is: it stands for the patient's home, and the
    # trace says so. The side file's own location wins over it.
    (finding,) = judged(without["claims"][0]["findings"])
    assert (finding["rule"], finding["severity"]) == ("medicare.telehealth-home-non-behavioral", "error")
    assert "patient.location = home (from place of service 10)" in finding["trace"]
    assert judged(with_side["claims"][0]["findings"]) == [] and with_side["claims"][0]["status"] == "clean"


def test_remits_command_prints_what_was_read():
    table = invoke("remits", FIX / "managed-care.835")
    assert table.exit_code == 0 and "claim 5554555444" in table.stdout and "PR-1 $300.00" in table.stdout
    data = json.loads(invoke("remits", FIX / "managed-care.835", "--format", "json").stdout)
    assert data[0]["claims"][1]["lines"][0]["adjustments"][1] == {"group": "CO", "carc": "45", "amount": "50.00",
                                                                   "quantity": None}


MUTATIONS = 8


def _mutations(text: str, rng: random.Random):
    segments = text.split("~")
    for _ in range(MUTATIONS):
        kind = rng.choice(["truncate", "reorder", "garble", "drop", "duplicate", "delimiters"])
        if kind == "truncate":
            yield text[: rng.randrange(len(text))]
        elif kind == "reorder":
            shuffled = segments[:]
            i, j = rng.randrange(len(shuffled)), rng.randrange(len(shuffled))
            shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
            yield "~".join(shuffled)
        elif kind == "garble":
            chars = list(text)
            for _ in range(rng.randrange(1, 20)):
                chars[rng.randrange(len(chars))] = chr(rng.randrange(32, 127))
            yield "".join(chars)
        elif kind == "drop":
            kept = segments[:]
            del kept[rng.randrange(len(kept))]
            yield "~".join(kept)
        elif kind == "duplicate":
            kept = segments[:]
            i = rng.randrange(len(kept))
            kept.insert(i, kept[i])
            yield "~".join(kept)
        else:
            yield text.replace("*", "|", rng.randrange(1, 50))


@pytest.mark.parametrize("source", sorted(FIX.glob("*.837")) + sorted(FIX.glob("*.835")), ids=lambda p: p.name)
def test_fuzzed_interchanges_never_crash_or_hang(policy, tmp_path, source):
    rng = random.Random(f"20261127-{source.name}")
    started = time.monotonic()
    count = 0
    for n, mutated in enumerate(_mutations(source.read_text(), rng)):
        path = tmp_path / f"m{count}.837"
        path.write_text(mutated)
        items = read_claim_files([path], policy)  # must not raise
        for item in items:
            assert isinstance(item, Claim) or item.errors
        read_835(mutated)  # must not raise
        count += 1
    assert count == MUTATIONS
    assert time.monotonic() - started < 60


def test_remits_match_claims_by_id_and_lines_by_code_date_and_position():
    from engine.x12.match import match

    claims = parse_claims_text(json.dumps([
        {"id": "5554555444", "payer": "commercial", "service_date": "2002-03-01",
         "lines": [{"code": "99213"}, {"code": "99211"}]},
        {"id": "8765432112", "payer": "commercial", "service_date": "2002-03-10", "lines": [{"code": "93000"}]}]))
    remits = read_835((FIX / "managed-care.835").read_text())
    matched, orphans = match(claims, remits)
    assert orphans == []
    first, second = matched
    assert list(first.lines) == [2] and first.lines[2].code == "99211"  # by procedure, not position
    assert list(second.lines) == [1] and second.lines[1].code == "93555"  # recoded: by position
    _, orphans = match(claims[:1], remits)
    assert [o.claim_id for o in orphans] == ["8765432112"]


def _cob_file_with_a_second_claim() -> str:
    """demo.cob.example3.B (a claim with another payer's 2320/2330 loops), then a second claim under the same
    subscriber with no other payer, whose one line has its own rendering provider and a date range."""
    segments = [s.strip() for s in (FIX / "demo.cob.example3.B.837").read_text().split("~") if s.strip()]
    end = next(i for i, s in enumerate(segments) if s.startswith("SE*"))
    second = ["CLM*SECOND-1*43.00***11:B:1*Y*A*Y*I", "HI*BK:4779", "LX*1", "SV1*HC:99213*43.00*UN*1.00***1",
              "DTP*472*RD8*20051003-20051005", "NM1*82*1*DOE*JANE****XX*1234567893", "PRV*PE*PXC*363LP0808X"]
    return "~".join(segments[:end] + second + segments[end:]) + "~"


def test_other_payer_loops_stay_with_their_claim_and_never_leak_into_the_next(policy):
    from engine.x12.claim837 import read_837

    parsed = read_837(_cob_file_with_a_second_claim(), {"567890": "commercial"}, policy.taxonomy)
    first, second = parsed.claims
    assert first["payer"] == second["payer"] == "commercial"  # the subscriber's payer, not the other payer's
    assert first["patient"]["id"] == second["patient"]["id"]
    assert first["billing_provider"]["npi"] == second["billing_provider"]["npi"] == "1999996666"
    assert first["rendering_provider"]["npi"] == "1999996666"  # 2310B, not the other payer's providers
    (other,) = first["other_payers"]
    assert other == {"responsibility": "P", "filing": "12", "payer_id": "999996666", "name": "KEY INSURANCE COMPANY",
                     "paid": Decimal("39.15"),
                     "adjustments": [{"group": "PR", "carc": "1", "amount": Decimal("21.89")},
                                     {"group": "PR", "carc": "2", "amount": Decimal("15.00")}]}
    assert "other_payers" not in second
    # The 2430 line adjudication (SVD, CAS) is the other payer's, not a line fact of this claim.
    assert [ln["code"] for ln in first["lines"]] == ["99213", "90782", "J3301"]
    (line,) = second["lines"]
    assert second["service_date"] == "2005-10-03" and line["service_date_to"] == "2005-10-05"
    assert line["rendering_provider"] == {"npi": "1234567893", "type": "NP"}


def test_a_line_rendering_provider_governs_its_line(policy):
    """An NP on a 2420A line of a claim whose rendering provider is an MD: who may bill is judged per line."""
    from engine.claims import Claim
    from engine.scrub import scrub

    (claim,) = parse_claims_text(json.dumps({
        "id": "L-1", "payer": "commercial", "service_date": "2024-03-05", "rendering_provider": {"type": "MD"},
        "lines": [{"code": "99213"}, {"code": "98971", "rendering_provider": {"type": "LCSW"}}]}))
    assert isinstance(claim, Claim) and claim.lines[1].rendering_provider.type == "LCSW"
    result = scrub([claim], policy, dt.date(2026, 11, 27)).claims[0]
    assert "cpt.biller-not-eligible" not in {f.rule for f in result.findings}  # 98971 is for the LCSW on its line


def test_an_unmapped_x12_payer_id_is_named_as_written(policy):
    from engine.scrub import scrub

    claims = parse_claims_text(json.dumps({"id": "U-1", "payer": "x12:C12345", "service_date": "2024-03-04",
                                           "lines": [{"code": "99213"}]}))
    (result,) = scrub(claims, policy, dt.date(2026, 11, 27)).claims
    assert result.status == "invalid"
    assert result.errors[0].reason.startswith("X12 payer id C12345 is not in payers.yaml")


@pytest.mark.parametrize("trailer, expected", [
    ("SE", "transaction set: the segment count in SE does not match the segments in the transaction set (SE count of"),
    ("GE", "functional group: the transaction set count in GE does not match the transaction sets in the group"),
    ("IEA", "interchange: the group count in IEA does not match the groups in the interchange"),
])
def test_envelope_errors_are_named_from_their_own_code_tables(trailer, expected):
    from engine.x12.validate import validate

    segments = (FIX / "demo.example1.837").read_text().split("~")
    at = next(i for i, s in enumerate(segments) if s.strip().startswith(trailer + "*"))
    parts = segments[at].strip().split("*")
    parts[1] = str(int(parts[1]) + 3)
    segments[at] = "\n" + "*".join(parts)
    reasons = [p.reason for p in validate("~".join(segments))]
    assert any(r.startswith(expected) for r in reasons), reasons
    assert not any("a loop occurs too often" in r for r in reasons)


@pytest.mark.parametrize("source", sorted(FIX.glob("*.835")), ids=lambda p: p.name)
def test_remits_never_print_none(source):
    result = invoke("remits", source)
    assert result.exit_code in (0, 1) and "None" not in result.stdout


# Files written for these tests by `export --format 837` from the claims below, and checked by
# pyx12 (see tests/fixtures/x12/NOTICE.md): coordination of benefits, a Medicare crossover to
# Medicaid, a line with its own rendering provider and a line over a date range (RD8), and the
# last of these with a wrong SE segment count.
COB_OTHER = {"responsibility": "P", "filing": "CI", "payer_id": "11111", "name": "PRIMARY HEALTH PLAN", "paid": 80.0,
             "adjustments": [{"group": "CO", "carc": "45", "amount": 20.0}, {"group": "PR", "carc": "1", "amount": 10.0}]}
CROSSOVER_OTHER = {"responsibility": "P", "filing": "MB", "payer_id": "MEDICARE", "name": "MEDICARE PART B",
                   "paid": Decimal("61.20"), "adjustments": [{"group": "CO", "carc": "45", "amount": Decimal("15.00")},
                                                            {"group": "PR", "carc": "2", "amount": Decimal("15.30")}]}


def _read(name, policy):
    return read_claim_files([FIX / name], policy)


def test_a_secondary_claim_keeps_its_other_payer_and_the_next_claim_its_own(policy):
    first, second = _read("cob-primary-secondary.837", policy)
    assert (first.id, first.payer, first.state, second.id, second.payer) == ("COB-1", "aetna", "NY", "COB-2", "aetna")
    assert first.patient.id == second.patient.id == "MEM-COB-1"
    assert first.billing_provider.npi == second.billing_provider.npi == "1234567893"
    assert [o.model_dump(exclude_none=True) for o in first.other_payers] == [COB_OTHER]
    assert second.other_payers == []
    assert [ln.code for ln in first.lines] == ["99213"] and [ln.code for ln in second.lines] == ["99214"]


def test_a_medicare_crossover_to_medicaid_names_medicare_as_the_primary(policy):
    (claim,) = _read("medicare-crossover-medicaid.837", policy)
    assert (claim.id, claim.payer, claim.state, claim.patient.id) == ("XOVER-1", "medicaid", "TX", "MCD-778899")
    assert [o.model_dump(exclude_none=True) for o in claim.other_payers] == [CROSSOVER_OTHER]
    shared = __import__("engine.facts", fromlist=["claim_facts"]).claim_facts
    from engine.policy.snapshot import resolve

    facts = shared(claim, resolve(policy, "medicaid", "TX", dt.date(2026, 11, 27)))
    assert facts["claim.other_payer_filings"] == {"MB"}


def test_line_rendering_providers_and_date_ranges_are_read_per_line(policy):
    (claim,) = _read("line-rendering-rd8.837", policy)
    assert claim.state is None  # the export's XX placeholder is not a state
    assert claim.rendering_provider.npi == "1497758544"
    one, two, three = claim.lines
    assert (one.rendering_provider, one.service_date_to) == (None, None)
    assert (claim.line_date(two), two.service_date_to) == (dt.date(2026, 4, 6), dt.date(2026, 4, 8))
    assert three.rendering_provider.model_dump(exclude_none=True) == {"npi": "1003000126", "type": "NP"}


def test_a_file_with_an_envelope_error_reports_its_claims_and_names_the_problem_apart(tmp_path):
    result = invoke("scrub", FIX / "se-count-error.837", "--no-store", "--format", "json", "--known-on", "2026-11-27")
    data = json.loads(result.stdout)
    assert result.exit_code == 1  # a broken interchange gates a pipeline, as an invalid claim does
    assert data["summary"]["claims"] == 1 and [c["id"] for c in data["claims"]] == ["LINE-1"]
    (problem,) = data["files"]
    assert (problem["name"], problem["segment"]) == ("se-count-error.837", 33)
    assert problem["reason"].startswith("transaction set: the segment count in SE does not match")
    table = invoke("scrub", FIX / "se-count-error.837", "--no-store", "--known-on", "2026-11-27")
    assert "FILE se-count-error.837 segment 33: transaction set" in table.stdout
    assert "1 claim:" in table.stdout and "1 file problem" in table.stdout
    lines = invoke("scrub", FIX / "se-count-error.837", "--no-store", "--format", "jsonl").stdout.splitlines()
    assert len(lines) == 2 and json.loads(lines[-1])["files"][0]["segment"] == 33
    clean = json.loads(invoke("scrub", FIX / "line-rendering-rd8.837", "--no-store", "--format", "json").stdout)
    assert clean["files"] == [] and clean["summary"]["claims"] == 1


def test_batches_held_in_memory_report_file_problems_apart_too(policy):
    """What-if, denials, export and the Python API read files into memory: an envelope error is
    a file problem there as well, never a claim without an id."""
    import engine

    broken = FIX / "se-count-error.837"
    whatif = invoke("whatif", broken, "--set", "payer=uhc", "--format", "json")
    data = json.loads(whatif.stdout)
    assert [c["id"] for c in data["comparisons"][0]["claims"]] == ["LINE-1"]
    assert [(f["name"], f["segment"]) for f in data["files"]] == [("se-count-error.837", 33)]
    assert "se-count-error.837 segment 33: transaction set: the segment count in SE" in whatif.stderr
    denials = invoke("denials", broken, FIX / "managed-care.835", "--no-store", "--format", "json")
    assert [(f["name"], f["segment"]) for f in json.loads(denials.stdout)["files"]] == [("se-count-error.837", 33)]
    assert "not analysed" not in denials.stderr and "se-count-error.837 segment 33" in denials.stderr
    report = engine.analyse_denials([broken, FIX / "managed-care.835"], dt.date(2026, 11, 27), policy=policy)
    assert report.not_analysed == [] and report.files[0]["segment"] == 33
    exported = invoke("export", broken)
    assert exported.exit_code == 1 and "CLM*LINE-1" in exported.stdout and "segment 33" in exported.stderr


@pytest.mark.parametrize("name", ["cob-primary-secondary.837", "medicare-crossover-medicaid.837",
                                  "line-rendering-rd8.837"])
def test_export_keeps_other_payer_loops_line_providers_and_ranges(name, policy, tmp_path):
    claims = _read(name, policy)
    text = write_837(claims, policy, now=dt.datetime(2026, 11, 30, 9, 0))
    assert validate(text) == []
    assert text == (FIX / name).read_text()  # the fixture is this export, byte for byte
    path = tmp_path / name
    path.write_text(text)
    assert [c.model_dump(exclude_none=True) for c in read_claim_files([path], policy)] == \
           [c.model_dump(exclude_none=True) for c in claims]


def _with_segment_count_fixed(text: str) -> str:
    segments = text.split("~\n")
    at = next(i for i, s in enumerate(segments) if s.startswith("SE*"))
    parts = segments[at].split("*")
    parts[1] = str(sum(1 for s in segments[segments.index(next(s for s in segments if s.startswith("ST*"))):at + 1]))
    segments[at] = "*".join(parts)
    return "~\n".join(segments)


def test_validator_findings_outside_what_a_claim_is_read_from_are_notes_not_a_block(tmp_path):
    text = (FIX / "line-rendering-rd8.837").read_text()
    noted = tmp_path / "noted.837"  # an NTE out of place: the claim is still read right
    noted.write_text(_with_segment_count_fixed(text.replace("~\nHI*", "~\nNTE*XXX*SEE NOTE~\nHI*", 1)))
    data = json.loads(invoke("scrub", noted, "--no-store", "--format", "json").stdout)
    (claim,) = data["claims"]
    assert claim["status"] in ("review", "reject") and "findings" in claim and data["files"] == []
    from engine.findings import claim_status

    assert claim_status([], claim["notes"]) == "review"  # a note alone asks for review
    (note,) = claim["notes"]
    assert note == {"field": "noted.837 segment 19", "reason": "Claim Information: the segment is not recognized"}
    table = invoke("scrub", noted, "--no-store").stdout
    assert "x12 note noted.837 segment 19: Claim Information" in table
    broken = tmp_path / "broken.837"  # a service line the validator cannot read: not judged
    broken.write_text(text.replace("SV1*HC:96372", "SV1*XX:96372", 1))
    (claim,) = json.loads(invoke("scrub", broken, "--no-store", "--format", "json").stdout)["claims"]
    assert claim["status"] == "invalid"
    assert any(e["field"] == "broken.837 segment 26" for e in claim["errors"])


def test_a_date_range_counts_every_day_it_covers_in_one_run_and_across_stored_runs(tmp_path, db_url):
    """RD8 ranges keep both dates, and rules that count days use them: a code billed for a day
    an earlier range covers is billed twice that day, whether judged in the same run or
    against the store; the units of a per-day code must fit its range's days."""
    from engine.claims import parse_claims_text
    from engine.x12.write837 import write_837
    from engine.policy.loader import load_policies

    base = {"payer": "commercial", "patient": {"id": "RD8-P", "birth_date": "1979-01-01"}, "diagnoses": ["N18.6"]}
    ranged = dict(base, id="RD8-1", service_date="2024-04-25",
                  lines=[{"code": "90970", "units": 10, "service_date_to": "2024-05-04"}])
    inside = dict(base, id="RD8-2", service_date="2024-05-03", lines=[{"code": "90970"}])
    after = dict(base, id="RD8-3", service_date="2024-05-05", lines=[{"code": "90970"}])
    too_many = dict(base, id="RD8-4", patient={"id": "RD8-Q", "birth_date": "1979-01-01"}, service_date="2024-06-01",
                    lines=[{"code": "90970", "units": 12, "service_date_to": "2024-06-10"}])
    text = write_837(parse_claims_text(json.dumps([ranged, inside, after, too_many])), load_policies())
    assert "DTP*472*RD8*20240425-20240504" in text
    (tmp_path / "one.837").write_text(text)

    def errors(result):
        return {c["id"]: [f["rule"] for f in c["findings"] if f["severity"] == "error"]
                for c in json.loads(result.stdout)["claims"]}

    same_run = errors(invoke("scrub", tmp_path / "one.837", "--no-store", "--format", "json", "--payer", "commercial"))
    assert same_run == {"RD8-1": [], "RD8-2": ["cpt.duplicate-line"], "RD8-3": [],
                        "RD8-4": ["cpt.esrd-daily-units-over-days"]}
    # the range judged in an earlier run, kept in the store
    (tmp_path / "first.json").write_text(json.dumps([ranged]))
    (tmp_path / "later.json").write_text(json.dumps([inside, after]))
    invoke("scrub", tmp_path / "first.json", "--db", db_url, "--format", "json")
    later = errors(invoke("scrub", tmp_path / "later.json", "--db", db_url, "--format", "json"))
    assert later == {"RD8-2": ["cpt.duplicate-line"], "RD8-3": []}
    bad = dict(base, id="RD8-5", service_date="2024-07-10",
               lines=[{"code": "90970", "units": 1, "service_date_to": "2024-07-01"}])
    (tmp_path / "bad.json").write_text(json.dumps([bad]))
    invalid = json.loads(invoke("scrub", tmp_path / "bad.json", "--no-store", "--format", "json").stdout)["claims"][0]
    assert invalid["status"] == "invalid"
    assert "lines[1].service_date_to is before the line's date of service" in invalid["errors"][0]["reason"]


def test_an_837_is_read_in_the_validators_single_pass(policy, monkeypatch):
    """Parse once: the claims come from the segments pyx12 read while validating; the text is
    split again only when pyx12 cannot read the interchange. Both readings agree."""
    import engine.x12.claim837 as claim837
    from engine.sources import x12_items
    from engine.x12.validate import validate_and_read

    for path in sorted(FIX.glob("*.837")):
        text = path.read_text()
        problems, segments = validate_and_read(text)
        assert segments is not None, path.name
        by_pyx12 = claim837.read_837_segments(segments, {}, policy.taxonomy)
        by_split = read_837(text, {}, policy.taxonomy)
        assert (by_pyx12.claims, by_pyx12.spans, by_pyx12.errors) == \
            (by_split.claims, by_split.spans, by_split.errors), path.name

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the interchange was split a second time")

    monkeypatch.setattr(claim837, "split", no_second_pass)
    items = x12_items("cob", (FIX / "cob-primary-secondary.837").read_text(), policy)
    assert [item["id"] for item in items] == ["COB-1", "COB-2"]
    monkeypatch.undo()
    broken = x12_items("broken", "ISA*00*not an interchange~", policy)  # pyx12 cannot read it: the reader says why
    (problems,) = broken
    assert problems.problems[0].reason.startswith("the file does not start with an ISA")
