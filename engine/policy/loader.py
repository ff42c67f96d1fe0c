"""Load and validate a policy tree, all or nothing.

Every problem is reported as ``file:line: what is wrong``; the load collects all of
them before failing, so one run of ``policy validate`` shows the whole list.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import pickle
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..claims import InvalidClaim, validate_claim
from .fields import CODE_ATTRIBUTES, FIELDS, AllOf, AnyOf, ConditionError, parse_when, walk
from .model import (
    Case, CaseFile, CodeRevision, CodeRevisionFile, CodeValue, CodeValueFile, Disable, Layer,
    Payer, PayersFile, PolicyFile, PolicySet, RuleRevision, Source, TaxonomyFile, Where,
)
from .yamlsrc import PolicyError, line_of, load_yaml

PAYERS_FILE = "payers.yaml"
TAXONOMY_FILE = "taxonomy.yaml"
TREE_FILES = {PAYERS_FILE, TAXONOMY_FILE}
_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_TEMPLATE = re.compile(r"\{([a-z_]+(?:\.[a-z0-9_]+)+)\}")
EARLIEST = dt.date(1900, 1, 1)


class PolicyLoadError(Exception):
    def __init__(self, errors: list[PolicyError]):
        self.errors = sorted(errors, key=lambda e: (e.file, e.line))
        super().__init__("\n".join(str(e) for e in self.errors))


def bundled_policies() -> Path:
    """The tree shipped inside the package, or the checkout's ``policies/``."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "_policies"
    return installed if installed.is_dir() else here.parent / "policies"


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.is_file())


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


def _pydantic_errors(exc: ValidationError, doc: Any, shown: str, prefix: tuple = ()) -> list[PolicyError]:
    found = []
    for err in exc.errors(include_input=False):
        loc = prefix + tuple(err["loc"])
        # Union branches repeat their errors with a type name in the path; drop those names.
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("list", "dict"))))
        where = ".".join(str(p) for p in loc if not isinstance(p, int)) or "file"
        reason = "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"]).removeprefix("Value error, ")
        found.append(PolicyError(shown, line_of(doc, loc), f"{where}: {reason}"))
    unique = {str(e): e for e in found}
    return list(unique.values())


def _path_allows(rel: Path, layer: str) -> bool:
    parts = rel.with_suffix("").parts
    folder = "/".join(parts[:-1])
    stem_layer = "/".join(parts)
    return layer == folder or layer == stem_layer


class _Loader:
    def __init__(self, root: Path):
        self.root = root
        self.errors: list[PolicyError] = []
        self.layers: dict[str, Layer] = {}
        self.sources: dict[str, tuple[Source, Where]] = {}
        self.source_refs: list[tuple[str, Where]] = []
        self.cases: list[Case] = []
        self.payers: dict[str, Payer] = {}

    def err(self, file: str, line: int, message: str) -> None:
        self.errors.append(PolicyError(file, line, message))

    # ---- files ---------------------------------------------------------------------

    def _tree_file(self, name: str, model, required: bool):
        """A top-level file of the tree (payers.yaml, taxonomy.yaml), validated, or None."""
        path = self.root / name
        if not path.is_file():
            if required:
                self.err(name, 1, "missing: the tree needs a payers.yaml naming each payer's layers")
            return None
        try:
            doc = load_yaml(path, name)
            return model.model_validate(doc)
        except PolicyError as exc:
            self.errors.append(exc)
        except ValidationError as exc:
            self.errors.extend(_pydantic_errors(exc, doc, name))
        return None

    def load_payers(self) -> None:
        parsed = self._tree_file(PAYERS_FILE, PayersFile, required=True)
        for key, spec in (parsed.payers.items() if parsed else []):
            self.payers[key] = Payer(key=key, name=spec.name, plan_class=spec.plan_class, layers=spec.layers,
                                     states={s.upper(): v for s, v in spec.states.items()},
                                     x12_payer_ids=spec.x12_payer_ids, names=spec.names)

    def load_taxonomy(self) -> None:
        parsed = self._tree_file(TAXONOMY_FILE, TaxonomyFile, required=False)
        self.taxonomy = {str(k).upper(): v for k, v in parsed.taxonomy.items()} if parsed else {}

    def load_file(self, path: Path) -> None:
        rel = path.relative_to(self.root)
        shown = rel.as_posix()
        try:
            doc = load_yaml(path, shown)
        except PolicyError as exc:
            self.errors.append(exc)
            return
        if doc is None:
            self.err(shown, 1, "empty policy file")
            return
        try:
            parsed = PolicyFile.model_validate(doc)
        except ValidationError as exc:
            self.errors.extend(_pydantic_errors(exc, doc, shown))
            return
        if not _path_allows(rel, parsed.layer):
            self.err(shown, line_of(doc, ("layer",)),
                     f"layer '{parsed.layer}' does not match the file's place in the tree")
            return
        layer = self.layers.setdefault(parsed.layer, Layer(name=parsed.layer))
        layer.files.append(shown)
        if parsed.reference_data is not None:
            if layer.reference_data not in (None, parsed.reference_data):
                self.err(shown, line_of(doc, ("reference_data",)),
                         f"layer '{layer.name}' already reads {layer.reference_data} reference data in another file")
            layer.reference_data = parsed.reference_data
        for key, source in parsed.sources.items():
            where = Where(file=shown, line=line_of(doc, ("sources", key)))
            if key in self.sources:
                self.err(shown, where.line, f"source '{key}' is already defined at {self.sources[key][1]}")
            self.sources[key] = (source, where)
        for name, group in parsed.diagnosis_groups.items():
            layer.diagnosis_groups[name] = group
            self.source_refs.append((group.source, Where(file=shown, line=line_of(doc, ("diagnosis_groups", name)))))
        self._codes(parsed, doc, shown, layer)
        self._rules(parsed, doc, shown, layer)
        for index, item in enumerate(parsed.disable):
            where = Where(file=shown, line=line_of(doc, ("disable", index)))
            layer.disables.append(Disable(rule_id=item.id, layer=layer.name, published=item.published,
                                          source=item.source, reason=item.reason, where=where))
            self.source_refs.append((item.source, where))
        for index, case in enumerate(parsed.cases):
            self._case(case, doc, shown, layer.name, index)

    def _codes(self, parsed: PolicyFile, doc: Any, shown: str, layer: Layer) -> None:
        for raw_code, body in parsed.codes.items():
            code = str(raw_code).upper()
            base = ("codes", raw_code)
            if isinstance(body, dict):
                revisions = body.get("revisions")
                if set(body) != {"revisions"} or not revisions:
                    self.err(shown, line_of(doc, base), f"code {code}: give a list of dated values or revisions:")
                    continue
                shaped = [(r, ("revisions", i)) for i, r in enumerate(revisions)]
            else:
                shaped = [(None, ())]
            for revision, rloc in shaped:
                values = revision.values if isinstance(revision, CodeRevisionFile) else body
                published = revision.published if isinstance(revision, CodeRevisionFile) else EARLIEST
                where = Where(file=shown, line=line_of(doc, base + rloc))
                out: list[CodeValue] = []
                for vi, value in enumerate(values):
                    vloc = base + rloc + (("values", vi) if revision else (vi,))
                    cv = self._code_value(code, value, revision, doc, shown, vloc)
                    if cv is None:
                        continue
                    for other in out:
                        if other.effective.overlaps(cv.effective):
                            self.err(shown, line_of(doc, vloc),
                                     f"code {code}: dated values overlap ({other.effective.from_} and {cv.effective.from_})")
                    out.append(cv)
                revs = layer.codes.setdefault(code, [])
                if any(r.published == published for r in revs):
                    self.err(shown, where.line, f"code {code}: two revisions in layer {layer.name} published {published}")
                revs.append(CodeRevision(code=code, layer=layer.name, published=published, values=out, where=where))

    def _code_value(self, code: str, value: CodeValueFile, revision: CodeRevisionFile | None,
                    doc: Any, shown: str, vloc: tuple) -> CodeValue | None:
        line = line_of(doc, vloc)
        source = value.source or (revision.source if revision else None)
        confidence = value.confidence or (revision.confidence if revision else None)
        if not source or not confidence:
            self.err(shown, line, f"code {code}: every dated value needs a source and a confidence")
            return None
        self.source_refs.append((source, Where(file=shown, line=line)))
        attrs = dict(value.model_extra or {})
        ok = True
        for key, val in attrs.items():
            kind = CODE_ATTRIBUTES.get(key)
            akey_line = line_of(doc, vloc + (key,))
            if kind is None:
                self.err(shown, akey_line, f"code {code}: unknown code attribute '{key}'")
                ok = False
            elif kind == "set":
                if not isinstance(val, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in val):
                    self.err(shown, akey_line, f"code {code}: {key} takes a list")
                    ok = False
                else:
                    attrs[key] = [str(v).upper() if key == "primaries" else str(v) for v in val]
            elif kind == "int" and (isinstance(val, bool) or not isinstance(val, int)):
                self.err(shown, akey_line, f"code {code}: {key} takes a whole number")
                ok = False
            elif kind == "bool" and not isinstance(val, bool):
                self.err(shown, akey_line, f"code {code}: {key} takes true or false")
                ok = False
            elif kind == "str":
                if isinstance(val, (dict, list)) or val is None:
                    self.err(shown, akey_line, f"code {code}: {key} takes text")
                    ok = False
                else:
                    attrs[key] = str(val)
        if "mdm" in attrs and attrs["mdm"] not in ("straightforward", "low", "moderate", "high"):
            self.err(shown, line_of(doc, vloc + ("mdm",)), f"code {code}: mdm is straightforward, low, moderate or high")
            ok = False
        return CodeValue(effective=value.effective, attrs=attrs, source=source, confidence=confidence) if ok else None

    def _rules(self, parsed: PolicyFile, doc: Any, shown: str, layer: Layer) -> None:
        seen_here = {r.rule_id for r in layer.rules}
        for index, rule in enumerate(parsed.rules):
            rloc = ("rules", index)
            line = line_of(doc, rloc)
            if not _ID.match(rule.id):
                self.err(shown, line_of(doc, rloc + ("id",)), f"rule id '{rule.id}' must be lower-case words joined by . or -")
                continue
            if rule.id in seen_here:
                self.err(shown, line, f"rule {rule.id} is defined twice in layer {layer.name}; give it revisions: instead")
                continue
            seen_here.add(rule.id)
            prefix = layer.name.replace("/", ".") + "."
            if not rule.replace and not rule.id.startswith(prefix):
                self.err(shown, line_of(doc, rloc + ("id",)), f"rule id '{rule.id}' must start with '{prefix}' (its layer); "
                         "to replace a rule of an earlier layer, add replace: true")
            if rule.revisions:
                if rule.published or rule.effective:
                    self.err(shown, line, f"rule {rule.id}: put published/effective in each revision, not beside revisions:")
                    continue
                specs = [(rev, rloc + ("revisions", i)) for i, rev in enumerate(rule.revisions)]
            else:
                if not rule.published or not rule.effective:
                    self.err(shown, line, f"rule {rule.id}: needs published and effective (or revisions:)")
                    continue
                specs = [(rule, rloc)]
            published_seen: dict[dt.date, int] = {}
            for rev, vloc in specs:
                vline = line_of(doc, vloc)
                if rev.published in published_seen:
                    self.err(shown, vline, f"rule {rule.id}: overlapping revisions, two published {rev.published}")
                    continue
                published_seen[rev.published] = vline
                merged = self._revision(rule, rev, layer, shown, vline, doc, vloc)
                if merged:
                    layer.rules.append(merged)

    def _revision(self, rule, rev, layer: Layer, shown: str, vline: int, doc: Any, vloc: tuple) -> RuleRevision | None:
        when = rev.when if rev.when is not None else rule.when
        then = rev.then if rev.then is not None else (rule.then if rev.derive is None else None)
        derive = rev.derive if rev.derive is not None else (rule.derive if rev.then is None else None)
        source = rev.source or rule.source
        confidence = rev.confidence or rule.confidence
        problems = []
        if when is None:
            problems.append("needs when:")
        if (then is None) == (derive is None):
            problems.append("needs exactly one of then: (a finding) or derive: (a fact)")
        if not source:
            problems.append("needs a source")
        if not confidence:
            problems.append("needs a confidence (high, medium or low)")
        for problem in problems:
            self.err(shown, vline, f"rule {rule.id}: {problem}")
        if problems:
            return None
        wloc = vloc + ("when",) if rev.when is not None else ("rules",) + vloc[1:2] + ("when",)
        try:
            cond = parse_when(when, ())
        except ConditionError as exc:
            self.err(shown, line_of(doc, wloc + exc.loc), f"rule {rule.id}: {exc.message}")
            return None
        if derive is not None:
            if not re.match(r"^[a-z][a-z0-9-]*$", derive):
                self.err(shown, vline, f"rule {rule.id}: derived fact name '{derive}' must be lower-case words joined by -")
                return None
            if any(t.op == "absent" and t.field.startswith("derived.") for t in walk(cond)):
                self.err(shown, vline, f"rule {rule.id}: a derive rule may not test for an absent derived fact")
                return None
            if any(t.field.startswith("derived.") for group in _any_groups(cond) for t in walk(group)):
                self.err(shown, vline, f"rule {rule.id}: a derive rule may test derived facts only outside any:")
                return None
        if then is not None:
            for text in [then.message] + ([then.fix.text] + ([then.fix.to] if then.fix.to else []) if then.fix else []):
                for name in _TEMPLATE.findall(text):
                    if name not in FIELDS:
                        self.err(shown, vline, f"rule {rule.id}: message names unknown field {{{name}}}")
        self.source_refs.append((source, Where(file=shown, line=vline)))
        return RuleRevision(
            rule_id=rule.id, layer=layer.name, title=rev.title or rule.title, replace=rule.replace,
            supersedes=rule.supersedes, missing=rule.missing, published=rev.published,
            effective=rev.effective, when=_plain(when), then=then, derive=derive, source=source,
            confidence=confidence, note=rev.note or rule.note, where=Where(file=shown, line=vline),
        )

    def _case(self, case: CaseFile, doc: Any, shown: str, layer: str, index: int) -> None:
        loc = ("cases", index)
        where = Where(file=shown, line=line_of(doc, loc))
        raw_claim = dict(_plain(case.claim))
        raw_claim.setdefault("id", f"case-{index + 1}")
        try:
            history = _expand_history([_plain(h) for h in case.history])
        except ValueError as exc:
            self.err(shown, line_of(doc, loc + ("history",)), f"case '{case.name}': {exc}")
            return
        for label, raw in [("claim", raw_claim)] + [(f"history[{i}]", h) for i, h in enumerate(history)]:
            checked = validate_claim(_plain(raw), 1)
            if isinstance(checked, InvalidClaim):
                for e in checked.errors:
                    self.err(shown, line_of(doc, loc + ("claim",)), f"case '{case.name}': {label}.{e.field}: {e.reason}")
                return
        expects = []
        for item in case.expect:
            expects.append({"rule": item} if isinstance(item, str) else dict(_plain(item)))
        for item in expects:
            unknown = set(item) - {"rule", "line", "severity", "missing"}
            if "rule" not in item or unknown:
                self.err(shown, where.line, f"case '{case.name}': an expectation is a rule id or {{rule, line, severity}}")
                return
        self.cases.append(Case(name=case.name, layer=layer, claim=raw_claim, known_on=case.known_on,
                               history=history, expect=expects, data=case.data.rows() if case.data else None,
                               expect_not=case.expect_not, status=case.status, where=where))

    # ---- across files ---------------------------------------------------------------

    def check_tree(self) -> None:
        for key, where in self.source_refs:
            if key not in self.sources:
                self.err(where.file, where.line, f"source '{key}' is not defined in any sources: section")
        for payer in self.payers.values():
            for chain in payer.all_chains():
                for name in chain:
                    if name not in self.layers:
                        self.err(PAYERS_FILE, 1, f"payer {payer.key}: layer '{name}' has no policy files")
        chains = {chain for payer in self.payers.values() for chain in payer.all_chains()
                  if all(n in self.layers for n in chain)}
        used = {name for chain in chains for name in chain}
        for name, layer in self.layers.items():
            if name not in used:
                self.err(layer.files[0], 1, f"layer '{name}' is not in any payer's chain in payers.yaml")
        for chain in sorted(chains):
            self._check_chain(chain)
        all_ids = {r.rule_id for layer in self.layers.values() for r in layer.rules}
        groups = {g for layer in self.layers.values() for g in layer.diagnosis_groups}
        for layer in self.layers.values():
            for rule in layer.rules:
                for test in walk(parse_when(rule.when, ())):
                    if test.field == "claim.diagnosis_groups" and isinstance(test.value, tuple):
                        for g in test.value:
                            if g not in groups:
                                self.err(rule.where.file, rule.where.line, f"rule {rule.rule_id}: no diagnosis group '{g}'")
                for target in rule.supersedes:
                    if target not in all_ids:
                        self.err(rule.where.file, rule.where.line, f"rule {rule.rule_id}: supersedes unknown rule {target}")
        for case in self.cases:
            if case.claim.get("payer") not in self.payers:
                self.err(case.where.file, case.where.line, f"case '{case.name}': payer '{case.claim.get('payer')}' is not in payers.yaml")
            for item in case.expect:
                if item["rule"] not in all_ids:
                    self.err(case.where.file, case.where.line, f"case '{case.name}': expects unknown rule {item['rule']}")
            for rid in case.expect_not:
                if rid not in all_ids:
                    self.err(case.where.file, case.where.line, f"case '{case.name}': expect_not names unknown rule {rid}")

    def _check_chain(self, chain: tuple[str, ...]) -> None:
        earlier: dict[str, str] = {}
        derived: set[str] = set()
        for name in chain:
            layer = self.layers[name]
            introduced: dict[str, str] = {}
            for rule in layer.rules:
                if rule.replace and rule.rule_id not in earlier:
                    self.err(rule.where.file, rule.where.line,
                             f"rule {rule.rule_id}: replace names a rule no earlier layer of {' -> '.join(chain)} has")
                elif not rule.replace and rule.rule_id in earlier:
                    self.err(rule.where.file, rule.where.line,
                             f"rule {rule.rule_id}: layer {earlier[rule.rule_id]} already has this id; add replace: true")
                introduced[rule.rule_id] = name
                if rule.derive:
                    derived.add(rule.derive)
            for item in layer.disables:
                if item.rule_id not in earlier:
                    self.err(item.where.file, item.where.line,
                             f"disable names rule {item.rule_id}, which no earlier layer of {' -> '.join(chain)} has")
            earlier.update(introduced)
        for name in chain:
            for rule in self.layers[name].rules:
                for test in walk(parse_when(rule.when, ())):
                    if test.field.startswith("derived.") and test.field[8:] not in derived:
                        self.err(rule.where.file, rule.where.line,
                                 f"rule {rule.rule_id}: no rule in {' -> '.join(chain)} derives '{test.field[8:]}'")


def _any_groups(cond):
    if isinstance(cond, AnyOf):
        yield cond
    elif isinstance(cond, AllOf):
        for item in cond.items:
            yield from _any_groups(item)


def _expand_history(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A history item may be ``{repeat: N, every_days: D, claim: {...}}``: N claims, D days apart."""
    out: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if "repeat" not in item:
            out.append(dict(item, id=item.get("id", f"history-{index + 1}")))
            continue
        if set(item) - {"repeat", "every_days", "claim"} or not isinstance(item.get("claim"), dict):
            raise ValueError("a repeated history item is {repeat: N, every_days: D, claim: {...}}")
        count, step = item["repeat"], item.get("every_days", 1)
        if not isinstance(count, int) or not isinstance(step, int) or count < 1 or count > 500 or step < 0:
            raise ValueError("repeat is 1 to 500 and every_days a whole number of days")
        try:
            first = dt.date.fromisoformat(item["claim"]["service_date"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("a repeated history claim needs a service_date") from None
        for n in range(count):
            out.append(dict(item["claim"], id=f"history-{index + 1}-{n + 1}",
                            service_date=(first + dt.timedelta(days=n * step)).isoformat()))
    return out


def _plain(value: Any) -> Any:
    """Strip line bookkeeping and turn YAML dates into ISO text, as JSON will hold them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


ENV_CACHE = "PAYERPOLICY_CACHE"


def _cache_path(root: Path, digest: str) -> Path | None:
    """Where a loaded tree is kept: keyed by the tree's digest, its folder and the loader's own code.

    ``PAYERPOLICY_CACHE=off`` turns the cache off; any other value names its folder.
    """
    setting = os.environ.get(ENV_CACHE)
    if setting == "off":
        return None
    if setting:
        folder = Path(setting)
    else:
        import platformdirs

        folder = Path(platformdirs.user_cache_dir("payerpolicy", appauthor=False))
    code = hashlib.sha256()
    for module in ("loader.py", "model.py", "fields.py", "yamlsrc.py"):
        code.update((Path(__file__).parent / module).read_bytes())
    code.update(str(root.resolve()).encode() + digest.encode() + sys.version.encode())
    return folder / f"policies-{code.hexdigest()[:32]}.pickle"


def load_policies(root: Path | str | None = None) -> PolicySet:
    """Load, validate and merge a policy tree; raise ``PolicyLoadError`` listing every problem.

    A tree that loaded cleanly is kept compiled in the user cache folder, keyed by its
    digest, so the next start skips the YAML (any change to any file is a new digest).
    """
    root = Path(root) if root else bundled_policies()
    if not root.is_dir():
        raise PolicyLoadError([PolicyError(str(root), 0, "not a policy folder")])
    digest = tree_digest(root)
    cached = _cache_path(root, digest)
    if cached is not None and cached.is_file():
        try:
            with cached.open("rb") as handle:
                policy = pickle.load(handle)
            if isinstance(policy, PolicySet) and policy.digest == digest:
                return policy
        except Exception:  # a stale or broken cache file is only a slower start
            pass
    policy = _load_tree(root, digest)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False, suffix=".tmp") as handle:
                pickle.dump(policy, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(handle.name, cached)
        except OSError:  # a read-only or full cache folder is only a slower start
            pass
    return policy


def _load_tree(root: Path, digest: str) -> PolicySet:
    loader = _Loader(root)
    loader.load_payers()
    loader.load_taxonomy()
    for path in _files(root):
        if path.relative_to(root).as_posix() not in TREE_FILES:
            loader.load_file(path)
    if not loader.errors:
        loader.check_tree()
    if loader.errors:
        raise PolicyLoadError(loader.errors)
    return PolicySet(
        digest=digest, root=str(root), payers=loader.payers, layers=loader.layers,
        sources={k: v for k, (v, _) in loader.sources.items()}, cases=loader.cases, taxonomy=loader.taxonomy,
    )
