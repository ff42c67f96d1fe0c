"""What-if: claim variants, two knowledge dates, two policy trees, and questions to the policy."""

import datetime as dt
import json

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from engine.cli import app
from engine.policy.loader import load_policies
from engine.policy.diff import code_history, diff_policies
from engine.whatif import SetError, apply_set, parse_sets

from .conftest import judged

runner = CliRunner()

TELEPHONE = {"id": "TEL-1", "payer": "medicare", "state": "OH", "service_date": "2019-06-03",
             "patient": {"id": "P-1"}, "rendering_provider": {"type": "MD"}, "encounter": {"modality": "audio-only"},
             "lines": [{"code": "99442", "charge": 75.0}]}
LAPSE = {"id": "LAPSE-1", "payer": "medicare", "service_date": "2025-10-15", "place_of_service": "10",
         "patient": {"id": "P-9", "location": "home"}, "diagnoses": ["I10"], "encounter": {"modality": "video"},
         "lines": [{"code": "99213", "charge": 110.0}]}
PROLONGED = {"id": "PRO-1", "payer": "commercial", "service_date": "2024-04-02", "rendering_provider": {"type": "MD"},
             "patient": {"id": "P-3"}, "encounter": {"level_basis": "time", "total_minutes": 60},
             "lines": [{"code": "99215", "charge": 200.0}, {"code": "99417", "charge": 60.0}]}


def invoke(*args):
    with freeze_time("2026-11-27"):
        return runner.invoke(app, [str(a) for a in args])


def write(tmp_path, *claims):
    path = tmp_path / "claims.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in claims) + "\n")
    return path


def whatif_json(*args):
    result = invoke("whatif", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["comparisons"]


def test_set_paths_and_grid():
    raw = json.loads(json.dumps(TELEPHONE))
    apply_set(raw, "line1.modifiers", "95+GT")
    apply_set(raw, "patient.location", "home")
    apply_set(raw, "encounter.total_minutes", "12")
    assert raw["lines"][0]["modifiers"] == ["95", "GT"] and raw["patient"]["location"] == "home"
    assert len(parse_sets(["payer=aetna,cigna,medicare", "service_date=2024-01-02,2025-01-06"])) == 6
    try:
        apply_set(raw, "line3.code", "99213")
    except SetError as exc:
        assert "no line 3" in str(exc)
    else:
        raise AssertionError("a missing line must be refused")


def test_the_telephone_em_story_2019_2020_2024_2025(tmp_path):
    comps = whatif_json(write(tmp_path, TELEPHONE), "--set", "service_date=2019-06-03,2020-04-15,2024-08-01,2025-02-03")
    statuses = [c["claims"][0]["status"]["b"] for c in comps]
    assert statuses == ["reject", "clean", "clean", "reject"]
    rules_2025 = [f["rule"] for f in comps[3]["claims"][0]["added"]]
    assert rules_2025 == ["medicare.telephone-em-deleted"]
    assert comps[1]["at_risk"] == {"a": "75.00", "b": "0.00"}  # money as text: never a float


def test_the_2025_lapse_as_known_then_and_today(tmp_path):
    (comp,) = whatif_json(write(tmp_path, LAPSE, TELEPHONE), "--known-on", "2025-10-20", "--known-on", "2026-11-27")
    assert comp["changed_claims"] == 1
    lapse = comp["claims"][0]
    assert lapse["status"] == {"a": "reject", "b": "clean"}
    assert [f["rule"] for f in lapse["removed"]] == ["medicare.telehealth-home-non-behavioral"]
    assert comp["by_rule"] == {"medicare.telehealth-home-non-behavioral": ["LAPSE-1"]}


def test_prolonged_time_commercial_vs_medicare(tmp_path):
    comps = whatif_json(write(tmp_path, PROLONGED), "--set", "payer=medicare",)
    (claim,) = comps[0]["claims"]
    assert claim["status"] == {"a": "clean", "b": "reject"}
    (added,) = claim["added"]
    assert added["rule"] == "medicare.noncovered-code" and added["fix"]["to"] == "G2212"
    # and G2212 at 60 minutes is short of Medicare's 69
    comps = whatif_json(write(tmp_path, PROLONGED), "--set", "payer=medicare", "--set", "line2.code=G2212")
    rules = [f["rule"] for f in comps[0]["claims"][0]["added"]]
    assert rules == ["cpt.prolonged-time-short"]
    assert "69" in comps[0]["claims"][0]["added"][0]["message"]


def test_whatif_table_and_usage(tmp_path):
    path = write(tmp_path, TELEPHONE)
    table = invoke("whatif", path, "--set", "service_date=2019-06-03,2020-04-15")
    assert table.exit_code == 0 and "TEL-1  reject -> clean" in table.stdout
    assert invoke("whatif", path).exit_code == 2
    assert invoke("whatif", path, "--set", "nonsense").exit_code == 2


def test_whatif_against_a_second_policy_tree(tmp_path, policy_copy):
    rules = policy_copy / "medicare" / "rules.yaml"
    rules.write_text(rules.read_text().replace('carc: "181"\n      group: CO\n      rarc: [N56]',
                                               'carc: "16"\n      group: CO\n      rarc: [N56]'))
    (comp,) = whatif_json(write(tmp_path, dict(TELEPHONE, service_date="2025-02-03")), "--policies-b", policy_copy)
    (changed,) = comp["claims"][0]["changed"]
    assert (changed["a"]["carc"], changed["b"]["carc"]) == ("181", "16")


def test_policy_diff_is_semantic(policy_copy, policy):
    rules = policy_copy / "medicare" / "rules.yaml"
    text = rules.read_text().replace("effective: {from: 2017-01-01, to: 2017-12-31}", "effective: {from: 2017-01-01, to: 2018-03-31}")
    rules.write_text(text.replace("severity: warning\n      message: \"Medicare systems accepted POS 10",
                                  "severity: error\n      message: \"Medicare systems accepted POS 10"))
    changes = diff_policies(policy, load_policies(policy_copy))
    got = {(c.id, c.change) for c in changes}
    assert got == {("medicare.gt-required revision 2016-11-15", "re-dated"),
                   ("medicare.pos10-before-implementation revision 2021-10-13", "severity")}
    result = invoke("policy", "diff", str(policy_copy.parent / "policies"), str(policy_copy))
    assert result.exit_code == 0 and "0 changes" in result.stdout


def test_policy_history_of_a_code(policy):
    events = code_history(policy, "medicare", "99442")
    published = [(e.published, e.what.split(" for ")[0]) for e in events if e.layer == "medicare"]
    assert ("2020-04-06", "code 99442 2020-03-01..2024-12-31") in published
    assert ("2024-11-01", "rule medicare.telephone-em-deleted") in published
    result = invoke("policy", "history", "medicare", "99442")
    assert result.exit_code == 0 and "medicare.telephone-em-deleted" in result.stdout


def test_policy_between_two_dates_of_service_and_two_knowledge_dates(policy):
    from engine.policy.diff import View, diff_views

    day = dt.date.fromisoformat
    deleted = diff_views(policy, "medicare", None, View(day("2024-12-31"), day("2026-01-01")),
                         View(day("2025-01-01"), day("2026-01-01")), "99442")
    got = {(c.kind, c.id, c.change) for c in deleted}
    assert ("code", "99442", "values") in got and ("rule", "medicare.telephone-em-deleted", "added") in got
    (values,) = [c for c in deleted if c.kind == "code"]
    assert values.detail.endswith("=> kind=telephone-em, replaced_by=99213, status=deleted")
    # the same date of service, before and after the retroactive extension of 2025-11-12
    cured = diff_views(policy, "medicare", None, View(day("2025-10-15"), day("2025-10-20")),
                       View(day("2025-10-15"), day("2025-11-20")), "99213")
    assert ("rule", "medicare.telehealth-home-non-behavioral", "removed") in {(c.kind, c.id, c.change) for c in cured}
    assert diff_views(policy, "medicare", None, View(day("2023-03-01"), day("2026-01-01")),
                      View(day("2023-03-02"), day("2026-01-01"))) == []
    result = invoke("policy", "between", "medicare", "2025-10-15", "--code", "99213", "--known-on", "2025-10-20",
                    "--then-known-on", "2025-11-20", "--format", "json")
    body = json.loads(result.stdout)
    assert body["first"] == {"date_of_service": "2025-10-15", "known_on": "2025-10-20"}
    assert body["second"] == {"date_of_service": "2025-10-15", "known_on": "2025-11-20"}
    assert "medicare.telehealth-home-non-behavioral" in {c["id"] for c in body["changes"]}
    table = invoke("policy", "between", "medicare", "2024-12-31", "2025-01-01", "--code", "99442")
    assert table.exit_code == 0 and "3 changes" in table.stdout and "medicare.telephone-em-deleted" in table.stdout
    assert invoke("policy", "between", "nope", "2025-01-01").exit_code == 2


def test_policy_query_who_pays_audio_only_in_texas():
    result = invoke("policy", "query", "--code", "99213", "--modifier", "93", "--pos", "10", "--modality", "audio-only",
                    "--location", "home", "--state", "TX", "--date", "2025-06-01", "--format", "json")
    answers = {a["payer"]: a for a in json.loads(result.stdout)["answers"]}
    assert answers["medicaid"]["verdict"] == "accepted"
    # UHC pays no audio-only office E/M from 2023-05-02; Aetna's audio-video modifier rule spares a 93 line,
    # but its 2023 rollback turns on the plan's funding, which the question does not give (issues 14, 20).
    assert [f["rule"] for f in judged(answers["uhc"]["findings"])] == ["commercial.uhc.audio-only-office-em"]
    assert answers["aetna"]["verdict"] == "cannot tell"
    assert answers["aetna"]["findings"][0]["missing"] == ["plan.funding"]
    assert [f["rule"] for f in answers["cigna"]["findings"] if f["severity"] == "error"] == ["commercial.telehealth-indicator"]
    assert answers["medicare"]["verdict"] == "cannot tell"
    assert answers["medicare"]["findings"][0]["missing"] == ["encounter.video_declined"]


def test_policy_query_free_text_form():
    result = invoke("policy", "query", "covers 99442 pos 02 phone", "--payer", "medicare", "--date", "2019-06-03",
                    "--format", "json")
    (answer,) = json.loads(result.stdout)["answers"]
    assert answer["verdict"] == "denied" and answer["findings"][0]["rule"] == "medicare.noncovered-code"
    assert invoke("policy", "query", "does medicare pay for this", "--payer", "medicare").exit_code == 2


def test_policy_query_in_words_reads_kinds_states_dates_and_answers_for_that_date():
    # the DESIGN example: a kind of code, a state code and an ISO date
    result = invoke("policy", "query", "which payers pay audio-only E/M in TX on 2025-06-01?", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    question = data["question"]
    assert question["codes"] == [f"980{n:02d}" for n in range(8, 16)]  # the audio-only telemedicine codes of 2025
    assert question["not_in_force"] == ["99441", "99442", "99443"]  # deleted on 2025-01-01
    assert (question["state"], question["date"], question["modality"]) == ("TX", "2025-06-01", "audio-only")
    assert question["payers"] == [] and question["known_on"] == "2026-11-27"
    medicare = [a for a in data["answers"] if a["payer"] == "medicare"]
    assert len(medicare) == 8 and {a["verdict"] for a in medicare} == {"denied"}
    assert {a["state"] for a in data["answers"]} == {"TX"}
    # a code on a past date is judged on that date, not today
    deleted = json.loads(invoke("policy", "query", "which payers pay 99442 on 2025-06-01", "--format", "json").stdout)
    medicare = next(a for a in deleted["answers"] if a["payer"] == "medicare")
    assert medicare["verdict"] == "denied" and medicare["findings"][0]["rule"] == "medicare.telephone-em-deleted"
    # payer and state names, a written date, a knowledge date, the provider type; the table echoes it all
    table = invoke("policy", "query", "does Medicare pay the psychotherapy add-on by an NP in Texas on June 3rd, 2024 "
                                      "as known on 2024-01-15")
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0] == ("Asked: 90833, 90836, 90838, 90840 (kind psychotherapy-addon, "
                                            "psychotherapy-crisis-addon), on 2024-06-03, in TX, by NP, as known on "
                                            "2024-01-15, payers medicare")


def test_policy_query_in_words_names_what_it_did_not_understand():
    unknown = invoke("policy", "query", "does medicare pay 99213 for gizmos on 2025-06-01")
    assert unknown.exit_code == 2 and "did not understand 'gizmos'" in unknown.output
    ambiguous = invoke("policy", "query", "does medicare pay 99213 MD")
    assert ambiguous.exit_code == 2 and "'MD' (a state or a provider type? say 'in MD' or 'by MD')" in ambiguous.output
    bare = invoke("policy", "query", "covers 99442 93")
    assert bare.exit_code == 2 and "say 'modifier 93' or 'POS 93'" in bare.output
    assert "is not a date" in invoke("policy", "query", "99213 on 2024-02-30").output
    assert "two dates of service" in invoke("policy", "query", "99213 on 2024-02-01 or 2024-03-01").output


def test_reading_a_question_field_by_field():
    from engine.policy.question_text import QuestionError, read_question

    names = {"medicare": "medicare", "uhc": "uhc", "unitedhealthcare": "uhc", "united healthcare": "uhc"}
    kinds = {"office-em-established", "office-em-new", "telephone-em", "psychotherapy-addon"}
    read = read_question("Does United Healthcare pay 99214 modifiers 95 and GT POS 10 video at home by a LCSW "
                         "in New York on 6/1/2025?", names, kinds)
    assert (read.payers, read.codes, read.modifiers, read.pos) == (["uhc"], ["99214"], ["95", "GT"], "10")
    assert (read.modality, read.location, read.provider, read.state) == ("video", "home", "LCSW", "NY")
    assert read.date == dt.date(2025, 6, 1) and read.known_on is None
    assert read_question("established office E/M on 1 March 2024", names, kinds).kinds == ["office-em-established"]
    assert read_question("office visits", names, kinds).kinds == ["office-em-established", "office-em-new"]
    assert read_question("99213 in an office or at home", names, kinds).state is None  # 'or' is a word, not Oregon
    assert read_question("99213 in OR", names, kinds).state == "OR"
    with pytest.raises(QuestionError, match="two states"):
        read_question("99213 in TX and in Ohio", names, kinds)


def test_policy_diff_between_stored_versions(policy_copy, policy, db_url):
    from engine.store import Store

    rules = policy_copy / "cpt" / "rules.yaml"
    rules.write_text(rules.read_text().replace("message: \"Modifier 93 (audio-only) took effect on 2022-01-01;",
                                               "message: \"Modifier 93 (audio-only) began on 2022-01-01;"))
    draft = load_policies(policy_copy)
    store = Store(db_url)
    store.import_policy(policy)
    store.import_policy(draft)
    result = invoke("policy", "diff", policy.digest, draft.digest, "--db", db_url, "--format", "json")
    (change,) = json.loads(result.stdout)
    assert (change["id"], change["change"]) == ("cpt.modifier-93-before-2022 revision 2021-09-01", "re-worded")
    assert invoke("policy", "diff", "sha256:nope", draft.digest, "--db", db_url).exit_code == 2


def test_policy_history_of_a_whole_chain_lists_every_rule_by_its_date():
    result = invoke("policy", "history", "medicaid", "--state", "TX")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert any(line.startswith("2022-07-15") and "medicaid.tx.audio-only-needs-93" in line for line in lines)
    assert any(line.startswith("2023-04-13") and "medicaid.tx.audio-only-office-em" in line for line in lines)
    dated = [line[:10] for line in lines if line[:4].isdigit()]
    assert dated == sorted(dated)
