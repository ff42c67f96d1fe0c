"""Policy lint: checks beyond what makes a tree loadable."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .cases import run_cases
from .loader import EARLIEST
from .model import PolicySet


@dataclass
class LintReport:
    checks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def problems(self) -> int:
        return sum(len(v) for v in self.checks.values())


def code_gaps(policy: PolicySet) -> list[str]:
    """Days inside a code's life that no dated value covers (within one layer's revision)."""
    found = []
    for layer in policy.layers.values():
        for code, revisions in sorted(layer.codes.items()):
            for rev in revisions:
                values = sorted(rev.values, key=lambda v: v.effective.from_)
                for before, after in zip(values, values[1:]):
                    if before.effective.to is not None and after.effective.from_ > before.effective.to + dt.timedelta(days=1):
                        which = layer.name if rev.published == EARLIEST else f"{layer.name}, revision {rev.published}"
                        found.append(f"{rev.where}: code {code} ({which}) has no value "
                                     f"from {before.effective.to + dt.timedelta(days=1)} to "
                                     f"{after.effective.from_ - dt.timedelta(days=1)}")
    return found


def stale_releases(policy: PolicySet, releases, today: dt.date) -> list[str]:
    """The newest imported release of each kind a program the tree reads, when it ends before
    the current quarter: claims of this quarter would be judged without CMS's tables."""
    from ..reference.releases import current_quarter, period_of

    programs = {layer.reference_data for layer in policy.layers.values()} - {None, "none"}
    quarter_start = period_of(current_quarter(today))[0]
    newest: dict[tuple[str, str], object] = {}
    for r in releases:
        if r.program in programs and ((r.kind, r.program) not in newest
                                      or r.period_end > newest[(r.kind, r.program)].period_end):
            newest[(r.kind, r.program)] = r
    return [f"{kind} ({program}): the newest imported release is {r.name} (to {r.period_end}), older than "
            f"{current_quarter(today)}: import the current one (payerpolicy data import)"
            for (kind, program), r in sorted(newest.items()) if r.period_end < quarter_start]


def lint(policy: PolicySet, known_on: dt.date, releases=None, today: dt.date | None = None) -> LintReport:
    """``releases``: the store's imported CMS releases, checked for age against ``today`` when given."""
    report = LintReport()
    # These are load errors; a tree that loaded has none, and lint says so explicitly.
    report.checks["overlapping revisions"] = []
    report.checks["replace or disable of a missing id"] = []
    report.checks["rules without a source"] = []
    report.checks["gaps inside a code's life"] = code_gaps(policy)
    low = []
    for layer in policy.layers.values():
        for rule in layer.rules:
            if rule.confidence == "low" and rule.then and rule.then.severity == "error":
                low.append(f"{rule.where}: rule {rule.rule_id} is low confidence but says error; it will only warn")
    report.checks["low-confidence rules written as errors"] = low
    coverage = run_cases(policy, known_on)
    report.checks["failing cases"] = [f"{r.case.where}: {r.case.name}: {'; '.join(r.failures)}"
                                      for r in coverage.results if not r.passed]
    report.checks["rules without a case that fires"] = [r for r, c in coverage.rules.items() if not c["expected"]]
    report.checks["rules without a near miss (a case that must not fire)"] = [
        r for r, c in coverage.rules.items() if not c["expected_not"]]
    cited = set()
    for layer in policy.layers.values():
        cited |= {r.source for r in layer.rules} | {d.source for d in layer.disables}
        cited |= {g.source for g in layer.diagnosis_groups.values()}
        cited |= {v.source for revs in layer.codes.values() for rev in revs for v in rev.values}
    report.checks["sources no rule or value cites"] = sorted(set(policy.sources) - cited)
    if releases is not None:
        report.checks["CMS releases older than the current quarter"] = stale_releases(policy, releases,
                                                                                    today or known_on)
    return report
