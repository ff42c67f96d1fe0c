"""Which code fits best: candidate codings from the code table, judged by the same rules.

Suggestions hold no billing knowledge of their own. Candidates come from the code table
in force on the date (kinds, time thresholds, MDM levels, add-on primaries, who may bill)
and every candidate coding - codes, modifiers, place of service, units - is scrubbed by
the ordinary engine. The best coding the rules accept is recommended; the others are
shown with the findings that sink them.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

from .claims import Claim, validate_claim
from .facts import claim_facts, line_facts
from .findings import Finding
from .policy.fields import MDM_RANK
from .policy.model import PolicySet
from .policy.snapshot import Resolver
from .scrub import scrub

E_M_CAPABLE = {"MD", "DO", "NP", "PA", "CNS"}
CLINICAL_STAFF = {"RN", "LPN", "MA", "pharmacist"}
VISIT_KINDS = {
    "in-person": ["office-em"],
    "video": ["office-em", "telemedicine-em-video"],
    "audio-only": ["office-em", "telephone-em", "telemedicine-em-audio"],
}


@dataclass
class Line:
    code: str
    modifiers: list[str] = field(default_factory=list)
    units: int = 1
    reason: str = ""
    source: str = ""


@dataclass
class Coding:
    lines: list[Line]
    place_of_service: str | None
    basis: str  # what the level rests on: time, mdm, minutes, days, service
    findings: list[Finding] = field(default_factory=list)
    rank: tuple = ()
    probe: bool = False  # judged only to say why it is not recommended (the next level up)
    value: float | None = None  # Medicare PFS total RVUs of its lines, when a fee schedule release prices them all

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def label(self) -> str:
        parts = []
        for ln in self.lines:
            text = ln.code + ("-" + "-".join(ln.modifiers) if ln.modifiers else "")
            parts.append(text + (f" x{ln.units}" if ln.units > 1 else ""))
        return " + ".join(parts) + (f" POS {self.place_of_service}" if self.place_of_service else "")


@dataclass
class Suggestion:
    recommended: Coding | None
    alternatives: list[Coding]
    documentation: list[str]
    notes: list[str] = field(default_factory=list)
    ranking: str = ""  # what the codings were ranked by

    def as_dict(self) -> dict[str, Any]:
        rec = self.recommended
        return {
            "ranking": self.ranking,
            "value_rvu": rec.value if rec is not None else None,
            "recommended": [] if rec is None else [
                {"code": ln.code, "modifiers": ln.modifiers, "units": ln.units,
                 "place_of_service": rec.place_of_service, "reason": ln.reason, "rule": f"code table {ln.code}",
                 "source": ln.source, "basis": rec.basis} for ln in rec.lines],
            "warnings": [] if rec is None else [{"rule": f.rule, "message": f.message} for f in rec.warnings],
            "alternatives": [{"code": alt.label(), "why_not": _why_not(alt, rec), "rule": _rule_of(alt),
                              "basis": alt.basis, "value_rvu": alt.value} for alt in self.alternatives],
            "documentation": self.documentation,
            "notes": self.notes,
        }


def _why_not(alt: Coding, best: Coding | None) -> str:
    if best is not None and not alt.errors and _combo(alt) == _combo(best):
        return f"the same coding, also supported by {alt.basis}"
    if alt.errors:
        return _sentences(f.message for f in alt.errors)
    if alt.warnings:
        return "at risk: " + _sentences(f.message for f in alt.warnings)
    if best is not None:
        if best.value is not None and alt.value is not None:
            return (f"accepted, but {best.label()} ({best.value} RVUs against {alt.value}) is the better-paying "
                    f"coding the documentation supports")
        return f"accepted, but {best.label()} is the better-paying coding the documentation supports"
    return "accepted"


def _sentences(messages) -> str:
    """Findings' messages one after another, each said once (several lines may carry the same one)."""
    said: list[str] = []
    for message in messages:
        text = message.strip()
        if text and text not in said:
            said.append(text if text.endswith((".", "?", "!")) else text + ".")
    return " ".join(said)


def _rule_of(alt: Coding) -> str | None:
    blocking = alt.errors or alt.warnings
    return blocking[0].rule if blocking else None


def _level_candidates(codes: dict[str, dict], kinds: list[str], new_patient: bool) -> dict[str, list[tuple[str, dict]]]:
    by_kind: dict[str, list[tuple[str, dict]]] = {}
    for code, attrs in codes.items():
        kind = attrs.get("kind", "")
        # Visit codes are for new or for established patients: by their kind, or the code table says.
        for_new = kind == "office-em-new" or attrs.get("patient_status") == "new"
        for_established = kind == "office-em-established" or (kind.startswith("telemedicine-em") and not for_new)
        if for_new and not new_patient or for_established and new_patient:
            continue
        family = "office-em" if kind.startswith("office-em") else kind
        if family in kinds and ("time_min" in attrs or "mdm" in attrs):
            by_kind.setdefault(family, []).append((code, attrs))
    for family in by_kind:
        by_kind[family].sort(key=lambda item: (item[1].get("time_min", 0), MDM_RANK.get(item[1].get("mdm", ""), 0)))
    return by_kind


def _supported(attrs: dict, minutes: int | None, mdm: int | None, basis: str) -> bool:
    if basis == "time":
        return minutes is not None and "time_min" in attrs and minutes >= attrs["time_min"]
    return mdm is not None and "mdm" in attrs and MDM_RANK[attrs["mdm"]] <= mdm


def _best_level(levels: list[tuple[str, dict]], minutes: int | None, mdm: int | None,
                basis: str) -> tuple[str, dict] | None:
    chosen = None
    for code, attrs in levels:
        if _supported(attrs, minutes, mdm, basis):
            chosen = (code, attrs)
    return chosen


def _addon(codes: dict[str, dict], kind: str, primary: str, minutes: int | None) -> tuple[str, dict] | None:
    if minutes is None:
        return None
    for code, attrs in sorted(codes.items()):
        if attrs.get("kind") != kind or primary not in attrs.get("primaries", ()):
            continue
        if attrs.get("time_min", 0) <= minutes and ("time_max" not in attrs or minutes <= attrs["time_max"]):
            return code, attrs
    return None


def suggest(raw: dict[str, Any], policy: PolicySet, known_on: dt.date, reference: str | None = None) -> Suggestion:
    """Suggest the coding for an encounter given as a DESIGN.md claim (its lines are ignored).

    Codings are ranked by Medicare fee-schedule value (total RVUs) when an imported MPFS release
    (``reference``: the SQLite file of imported CMS releases) covers the date; else by level."""
    base = {k: v for k, v in raw.items() if k not in ("lines", "adjudication")}
    base.setdefault("id", "suggest")
    probe = validate_claim(dict(base, lines=[{"code": "99213"}]), 1)
    if not isinstance(probe, Claim):
        raise ValueError("; ".join(f"{e.field}: {e.reason}" for e in probe.errors))
    if probe.payer not in policy.payers:
        raise ValueError(f"unknown payer {probe.payer}")
    from .reference.lookup import open_reference

    resolver = Resolver(policy, open_reference(reference))
    snapshot = resolver.get(probe.payer, probe.state, known_on)
    day = probe.service_date
    codes = snapshot.codes_on(day)
    enc = probe.encounter
    modality = (enc.modality if enc else None) or "in-person"
    provider = probe.rendering_provider.type if probe.rendering_provider else None
    new_patient = bool(probe.patient and probe.patient.new_patient)
    therapy = enc.psychotherapy_minutes if enc else None
    # E/M time excludes the minutes of separately reported psychotherapy, as the scrubber counts it.
    minutes = enc.total_minutes - (therapy or 0) if enc and enc.total_minutes is not None else None
    mdm = MDM_RANK.get(enc.mdm) if enc and enc.mdm else None

    codings: list[Coding] = []
    notes: list[str] = []
    if modality == "portal":
        codings += _minutes_family(codes, "e-visit", minutes, "portal minutes over 7 days")
    elif modality == "remote-monitoring":
        codings += _rpm(codes, enc)
    elif probe.incident_to is not None or provider in CLINICAL_STAFF:
        if "99211" in codes:
            codings.append(Coding([Line("99211", reason="clinical-staff visit incident-to the supervising "
                                                         "practitioner (no time or MDM threshold)")], None, "service"))
    elif provider is not None and provider not in E_M_CAPABLE:
        codings += _psychotherapy_only(codes, therapy, probe)
    else:
        families = _level_candidates(codes, VISIT_KINDS.get(modality, ["office-em"]), new_patient)
        bases = ["time", "mdm"] if day >= dt.date(2021, 1, 1) else ["mdm", "time"]
        for family, levels in families.items():
            for basis in bases:
                chosen = _best_level(levels, minutes, mdm, basis)
                index = levels.index(chosen) if chosen else -1
                if chosen is not None and index + 1 < len(levels):
                    # The next level up, judged too, so the answer says what it would need.
                    codings.append(Coding([Line(levels[index + 1][0], reason="the next level up")], None, basis,
                                          probe=True))
                if chosen is None:
                    continue
                code, attrs = chosen
                what = (f"{minutes} minutes of E/M time meets the {attrs.get('time_min')}-minute threshold"
                        if basis == "time" else f"{enc.mdm} MDM supports this level")
                lines = [Line(code, reason=f"{attrs.get('kind')}: {what}")]
                if therapy is not None and therapy >= 16:
                    addon = _addon(codes, "psychotherapy-addon", code, therapy)
                    if addon:
                        lines.append(Line(addon[0], reason=f"{therapy} psychotherapy minutes, documented apart "
                                                          f"from E/M time"))
                codings.append(Coding(lines, None, basis))
                if basis == "time":
                    for extra in _prolonged(codes, probe, code, snapshot, day):
                        codings.append(Coding(lines + [extra], None, basis))
        if therapy is not None and therapy >= 16:
            # Psychotherapy without E/M plus 90863: the coding prescribers are most often tempted by.
            codings += _psychotherapy_only(codes, therapy, probe, with_pharmacologic=True)
        if not codings:
            notes.append("no level is supported: give the total minutes (level by time) or the MDM level")
    marks = _telehealth_marks(snapshot, day, modality) if modality in MODALITY_MARKS else []
    codings = _with_places(codings, modality, probe, marks)
    prices, ranking = _fee_schedule(resolver.reference, day, known_on)
    judged = [_judge(c, base, policy, known_on, resolver, prices) for c in codings]
    judged.sort(key=lambda c: c.rank, reverse=True)
    best = next((c for c in judged if not c.errors and not c.probe), None)
    return Suggestion(best, _alternatives(judged, best), _documentation(best, modality, probe), notes, ranking)


def _fee_schedule(reference, day: dt.date, known_on: dt.date):
    """A code's total RVUs on the date from the imported Medicare fee schedule, and the ranking's basis."""
    release = reference.release("mpfs-indicators", "medicare", day, known_on) if reference is not None else None
    if release is None:
        return None, (f"by level (time and MDM thresholds of the code table): no imported Medicare fee schedule "
                      f"release covers {day} (payerpolicy data import mpfs-indicators)")
    name = next((r.name for r in reference.releases if r.id == release), "?")

    def price(code: str) -> float | None:
        row = reference.mpfs(release, code)
        return row[2] if row is not None else None

    return price, f"by Medicare physician fee schedule value: non-facility total RVUs, release {name}"


def _combo(coding: Coding) -> tuple:
    return tuple((ln.code, ln.units) for ln in coding.lines)


def _alternatives(judged: list[Coding], best: Coding | None) -> list[Coding]:
    """One entry per code combination (its best variant); a combination no variant makes
    acceptable keeps every distinct reason, e.g. both the time and the MDM it would need."""
    groups: dict[tuple, list[Coding]] = {}
    for coding in judged:
        groups.setdefault(_combo(coding), []).append(coding)
    out = []
    for key, group in groups.items():
        top = group[0]
        if best is not None and key == _combo(best):
            # The same codes on another basis are defensible too: show that basis.
            others = [c for c in group if c.basis != best.basis and not c.errors]
            if others:
                out.append(others[0])
            continue
        if top.errors:
            # The least-broken variant on each basis says what that basis would need.
            seen: list[Finding] = []
            for basis in dict.fromkeys(c.basis for c in group):
                for f in next(c for c in group if c.basis == basis).errors:
                    if f.message not in [x.message for x in seen]:
                        seen.append(f)
            top = Coding(top.lines, top.place_of_service, top.basis, seen, top.rank)
        out.append(top)
    return out


def _minutes_family(codes: dict[str, dict], kind: str, minutes: int | None, what: str) -> list[Coding]:
    out = []
    for code, attrs in sorted(codes.items()):
        if attrs.get("kind") == kind and minutes is not None and attrs.get("time_min", 0) <= minutes and (
                "time_max" not in attrs or minutes <= attrs["time_max"]):
            out.append(Coding([Line(code, reason=f"{minutes} {what} is in the code's range")], None, "minutes"))
    return out


def _rpm(codes: dict[str, dict], enc) -> list[Coding]:
    """Device supply by days and treatment management by minutes, alone and together."""
    days = enc.rpm_days if enc else None
    minutes = enc.rpm_minutes if enc else None
    devices = [[Line(code, reason=f"{days} days of device data in the 30-day period")]
               for code, attrs in sorted(codes.items()) if attrs.get("kind") == "rpm-device" and days is not None]
    managements = []
    for code, attrs in sorted(codes.items(), key=lambda item: -item[1].get("time_min", 0)):
        if attrs.get("kind") != "rpm-management" or minutes is None or minutes < attrs.get("time_min", 0):
            continue
        lines = [Line(code, reason=f"{minutes} management minutes in the month (first {attrs.get('time_min')})")]
        extra = [c for c, a in codes.items() if a.get("kind") == "rpm-management-addon" and code in a.get("primaries", ())]
        if extra and minutes >= attrs["time_min"] + 20:
            units = (minutes - attrs["time_min"]) // 20
            lines.append(Line(extra[0], units=units, reason=f"each further 20 minutes ({units})"))
        managements.append(lines)
    combos = [d + m for d in devices for m in managements] + devices + managements
    return [Coding(lines, None, "days" if lines[0].code in {d[0].code for d in devices} else "minutes")
            for lines in combos]


def _psychotherapy_only(codes: dict[str, dict], therapy: int | None, probe: Claim,
                        with_pharmacologic: bool = False) -> list[Coding]:
    out = []
    for code, attrs in sorted(codes.items()):
        if attrs.get("kind") == "psychotherapy" and therapy is not None and attrs.get("time_min", 0) <= therapy and (
                "time_max" not in attrs or therapy <= attrs["time_max"]):
            lines = [Line(code, reason=f"{therapy} psychotherapy minutes (the provider does not bill E/M)")]
            prescriber = with_pharmacologic or (probe.rendering_provider and
                                                probe.rendering_provider.prescribing_psychologist)
            pharm = [c for c, a in codes.items() if a.get("kind") == "pharmacologic-management-addon"
                     and code in a.get("primaries", ())]
            if prescriber and pharm:
                lines.append(Line(pharm[0], reason="pharmacologic management by a prescribing psychologist"))
            out.append(Coding(lines, None, "minutes"))
    return out


def _prolonged(codes: dict[str, dict], probe: Claim, primary: str, snapshot, day: dt.date) -> list[Line]:
    """Prolonged add-ons the time supports, with units from the code table (as the scrubber counts them)."""
    lines = []
    for code, attrs in sorted(codes.items()):
        if attrs.get("kind") != "prolonged-addon" or primary not in attrs.get("primaries", ()):
            continue
        claim = probe.model_copy(update={"lines": [probe.lines[0].model_copy(update={"code": primary}),
                                                   probe.lines[0].model_copy(update={"code": code})]})
        facts = line_facts(claim, 2, claim.lines[1], claim_facts(claim, snapshot), snapshot, None)
        units = facts.get("line.units_supported", 0)
        if units >= 1:
            lines.append(Line(code, units=units, reason=f"each full 15 minutes from {facts['line.units_start']} "
                                                        f"minutes: {units} unit(s)"))
    return lines


# CPT's own marks for the modality (Appendix P and T): tried for every payer.
MODALITY_MARKS = {"video": ["95"], "audio-only": ["93"]}


def _telehealth_marks(snapshot, day: dt.date, modality: str) -> list[list[str]]:
    """No mark, CPT's mark for the modality, and every mark a telehealth rule in force on the date
    asks for in its fix: a payer rule that wants GT, or FQ, changes the candidates without code."""
    marks = [[], MODALITY_MARKS[modality]]
    for rule in snapshot.rules:
        wanted = (rule.fix or {}).get("add_modifiers") or []
        about_telehealth = any(f in ("derived.telehealth", "derived.audio-only-telehealth") for f in rule.fields)
        if wanted and about_telehealth and rule.revision.effective.covers(day) and list(wanted) not in marks:
            marks.append(list(wanted))
    return marks


def _with_places(codings: list[Coding], modality: str, probe: Claim, marks: list[list[str]]) -> list[Coding]:
    """Telehealth candidates in every combination of POS and modality modifier the rules may want."""
    if modality not in ("video", "audio-only"):
        return [Coding(c.lines, probe.place_of_service or "11", c.basis, probe=c.probe)
                if c.place_of_service is None else c for c in codings]
    mods = marks
    places = ["02", "10", "11"]
    out = []
    for coding in codings:
        for pos, extra in itertools.product(places, mods):
            # The mark on the visit line alone, and on every line (add-ons ride with their primary):
            # the rules, not this list, decide which one the payer wants.
            for everywhere in ((False, True) if extra and len(coding.lines) > 1 else (False,)):
                lines = [Line(ln.code, list(extra) if i == 0 or everywhere else list(ln.modifiers), ln.units,
                              ln.reason) for i, ln in enumerate(coding.lines)]
                out.append(Coding(lines, pos, coding.basis, probe=coding.probe))
    return out


def _judge(coding: Coding, base: dict[str, Any], policy: PolicySet, known_on: dt.date, resolver: Resolver,
           prices) -> Coding:
    raw = dict(base, place_of_service=coding.place_of_service,
               lines=[{"code": ln.code, "modifiers": ln.modifiers, "units": ln.units} for ln in coding.lines])
    if coding.basis in ("time", "mdm"):
        raw["encounter"] = dict(raw.get("encounter") or {}, level_basis=coding.basis)
    claim = validate_claim(raw, 1)
    result = scrub([claim], policy, known_on, resolver=resolver).claims[0]
    # One encounter has no history: "cannot check the frequency without a patient id" is not a risk here.
    coding.findings = [f for f in result.findings if f.missing != ["patient.id"]]
    for ln in coding.lines:
        ln.source = _code_source(policy, ln.code, claim)
    first = coding.lines[0]
    level = (_attrs(policy, claim, first.code, known_on).get("time_min", 0),
             MDM_RANK.get(_attrs(policy, claim, first.code, known_on).get("mdm", ""), 0))
    extra_units = sum(ln.units for ln in coding.lines[1:])
    fewer_marks = -sum(len(ln.modifiers) for ln in coding.lines)
    # A coding that bills every documented service (psychotherapy, prolonged time) comes before one
    # that drops one, whatever warnings it carries; a warning counts once however many lines it is on.
    if prices is not None:
        values = [prices(ln.code) for ln in coding.lines]
        if all(v is not None for v in values):
            coding.value = round(sum(v * ln.units for v, ln in zip(values, coding.lines)), 2)
    value = (coding.value is not None, coding.value or 0.0)
    coding.rank = (not coding.errors, -len(coding.errors), len(coding.lines), -len({w.rule for w in coding.warnings}),
                   value, level, extra_units, coding.basis == "time", fewer_marks)
    return coding


def _attrs(policy: PolicySet, claim: Claim, code: str, known_on: dt.date) -> dict[str, Any]:
    return Resolver(policy).get(claim.payer, claim.state, known_on).code_attrs(code, claim.service_date) or {}


def _code_source(policy: PolicySet, code: str, claim: Claim) -> str:
    """The source of the code-table value that defines the code (its kind) on the date."""
    found = ""
    for name in policy.payers[claim.payer].chain(claim.state):
        for rev in policy.layers[name].codes.get(code, []):
            for value in rev.values:
                if value.effective.covers(claim.service_date):
                    if "kind" in value.attrs:
                        return value.source
                    found = found or value.source
    return found


def _documentation(best: Coding | None, modality: str, probe: Claim) -> list[str]:
    notes: list[str] = []
    if best is None:
        return notes
    if best.basis == "time":
        notes.append("A statement of the total time personally spent on the date of service, and the activities.")
    if best.basis == "mdm":
        notes.append("The problems addressed, the data reviewed and the risk of management that support the MDM level.")
    codes = {ln.code for ln in best.lines}
    if any(c in codes for c in ("90833", "90836", "90838")):
        notes.append("Psychotherapy minutes, documented separately from the E/M and not counted in E/M time.")
    if modality == "audio-only":
        notes.append("The patient's consent to an audio-only visit and the reason video was not used "
                     "(the patient could not use or declined it).")
    if modality == "portal":
        notes.append("The patient-initiated message, consent, and the cumulative minutes over the 7 days.")
    if modality == "video":
        notes.append("That the visit was real-time audio and video, and where the patient and practitioner were.")
    for f in best.findings:
        if f.fix and f.fix.get("action") == "document" and f.fix["text"] not in notes:
            notes.append(f.fix["text"])
    return notes
