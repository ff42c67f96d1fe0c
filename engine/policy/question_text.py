"""The free-text form of a policy question: "which payers pay audio-only E/M in TX on 2025-06-01?"

Every word is accounted for: a code or a kind of code, payers by key or name, a state by
code or name, a date of service (ISO, 6/1/2025 or written) and a knowledge date ("as known
on ..."), modifiers, POS, where the patient is, the modality and the provider type. Words
that say none of these and are not small talk ("which", "pay", "does") are named back to
the asker rather than dropped, so a question is never answered as something it did not say.
The payers' names and the kinds of code come from the policy tree; nothing here names a payer.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

STATES = {
    "AL": "alabama", "AK": "alaska", "AZ": "arizona", "AR": "arkansas", "CA": "california", "CO": "colorado",
    "CT": "connecticut", "DE": "delaware", "DC": "district of columbia", "FL": "florida", "GA": "georgia",
    "HI": "hawaii", "ID": "idaho", "IL": "illinois", "IN": "indiana", "IA": "iowa", "KS": "kansas",
    "KY": "kentucky", "LA": "louisiana", "ME": "maine", "MD": "maryland", "MA": "massachusetts",
    "MI": "michigan", "MN": "minnesota", "MS": "mississippi", "MO": "missouri", "MT": "montana",
    "NE": "nebraska", "NV": "nevada", "NH": "new hampshire", "NJ": "new jersey", "NM": "new mexico",
    "NY": "new york", "NC": "north carolina", "ND": "north dakota", "OH": "ohio", "OK": "oklahoma",
    "OR": "oregon", "PA": "pennsylvania", "RI": "rhode island", "SC": "south carolina", "SD": "south dakota",
    "TN": "tennessee", "TX": "texas", "UT": "utah", "VT": "vermont", "VA": "virginia", "WA": "washington",
    "WV": "west virginia", "WI": "wisconsin", "WY": "wyoming", "PR": "puerto rico",
}
PROVIDER_TYPES = ["MD", "DO", "NP", "PA", "CNS", "RN", "LPN", "MA", "pharmacist", "psychologist",
                  "LCSW", "LMFT", "LPC", "PT", "OT", "SLP", "RD"]
# Abbreviations that are never English words or state codes: understood in any case, alone.
_PLAIN_PROVIDERS = {"np", "cns", "lpn", "lcsw", "lmft", "lpc", "slp", "pharmacist", "psychologist"}
MODALITIES = {"video": "video", "audio": "audio-only", "audio-only": "audio-only", "phone": "audio-only",
              "telephone": "audio-only", "in-person": "in-person", "portal": "portal"}
LOCATIONS = {"home", "office", "clinic"}
MONTHS = {m: n for n, names in enumerate([("jan", "january"), ("feb", "february"), ("mar", "march"),
                                          ("apr", "april"), ("may",), ("jun", "june"), ("jul", "july"),
                                          ("aug", "august"), ("sep", "sept", "september"),
                                          ("oct", "october"), ("nov", "november"), ("dec", "december")], 1)
          for m in names}
# Words a question is made of that say nothing to the rules.
SMALL_WORDS = {
    "which", "what", "who", "whom", "does", "do", "did", "is", "are", "was", "will", "would", "can", "could",
    "pay", "pays", "paid", "paying", "cover", "covers", "covered", "accept", "accepts", "accepted", "allow",
    "allows", "allowed", "reimburse", "reimburses", "take", "takes", "bill", "billed", "billing", "payer",
    "payers", "plan", "plans", "insurer", "insurers", "the", "a", "an", "on", "in", "for", "of", "with", "at",
    "to", "and", "or", "as", "from", "by", "under", "when", "date", "service", "services", "dos", "code",
    "codes", "if", "it", "this", "that", "any", "every", "all", "there", "patient", "patients", "me", "tell",
    "show", "list", "still", "now", "today", "be",
}
# How people say the words code kinds are made of (kinds are hyphenated words in the code table).
_PHRASES = [(r"\be\s*/\s*m\b|\be\s*&\s*m\b|\bevaluation and management\b", " em "),
            (r"\baudio[- ]only\b", " audio "), (r"\badd[- ]on\b", " addon "), (r"\bin[- ]person\b", " in-person "),
            (r"\bremote (?:patient )?monitoring\b", " rpm "), (r"\bplace of service\b", " pos "),
            (r"\bcheck[- ]in\b", " check-in ")]
_KIND_WORDS = {"em": {"em"}, "visit": {"em", "visit"}, "visits": {"em", "visit"}, "audio": {"audio", "telephone"},
               "phone": {"telephone", "audio"}, "telephone": {"telephone", "audio"}, "therapy": {"psychotherapy"},
               "telehealth": {"telemedicine", "virtual"}, "virtual": {"virtual", "telemedicine"},
               "check-in": {"check", "in"}}
_CODE = re.compile(r"^(?:\d{5}|[A-Za-z]\d{4}|\d{4}[A-Za-z])$")
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_DATES = [
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), lambda m: (m[1], m[2], m[3])),
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b"), lambda m: (m[3], m[1], m[2])),
    (re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I),
     lambda m: (m[3], MONTHS[m[1].lower()], m[2])),
    (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MONTH})\.?,?\s+(\d{{4}})\b", re.I),
     lambda m: (m[3], MONTHS[m[2].lower()], m[1])),
]
_KNOWN_BEFORE = re.compile(r"(?:(?:as\s+)?known\s+(?:on|by|as\s+of)|as\s+of)\s*$", re.I)


class QuestionError(ValueError):
    """The question could not be read; the message says which words and why."""


@dataclass
class ReadQuestion:
    """What a free-text question said, field by field (echoed back with the answer)."""

    codes: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # kinds of code the words named
    not_in_force: list[str] = field(default_factory=list)  # codes of those kinds not in force on the date
    payers: list[str] = field(default_factory=list)
    state: str | None = None
    date: dt.date | None = None
    known_on: dt.date | None = None
    modifiers: list[str] = field(default_factory=list)
    pos: str | None = None
    modality: str | None = None
    location: str | None = None
    provider: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in self.__dict__.items()}

    def sentence(self) -> str:
        """The question as read, in words, so the asker can see what was answered."""
        parts = [code_list(self.codes, self.kinds) + ("-" + "-".join(self.modifiers) if self.modifiers else ""),
                 f"on {self.date}"]
        parts += [f"in {self.state}"] if self.state else []
        parts += [f"POS {self.pos}"] if self.pos else []
        parts += [self.modality] if self.modality else []
        parts += [f"patient at {self.location}"] if self.location else []
        parts += [f"by {self.provider}"] if self.provider else []
        parts += [f"as known on {self.known_on}", ("payers " + ", ".join(self.payers)) if self.payers else "every payer"]
        return "Asked: " + ", ".join(parts)


def code_list(codes: list[str], kinds: list[str] | None = None) -> str:
    """Codes as a reader takes them in: all of a few, the first and last of many, with their kinds."""
    kind = f"kind {', '.join(kinds)}" if kinds else ""
    if len(codes) <= 4:
        return ", ".join(codes) + (f" ({kind})" if kind else "")
    return f"{codes[0]}..{codes[-1]} ({len(codes)} codes" + (f" of {kind})" if kind else ")")


def _date(year: str, month: Any, day: str, written: str) -> dt.date:
    try:
        return dt.date(int(year), int(month), int(day))
    except ValueError:
        raise QuestionError(f"'{written}' is not a date") from None


def _take_dates(text: str, read: ReadQuestion) -> str:
    found: list[tuple[int, int, dt.date]] = []
    for pattern, parts in _DATES:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b, _ in found):
                continue
            found.append((m.start(), m.end(), _date(*parts(m), m[0])))
    for start, end, day in sorted(found, reverse=True):
        before = text[:start]
        known = _KNOWN_BEFORE.search(before)
        if known:
            if read.known_on is not None:
                raise QuestionError("the question gives two knowledge dates")
            read.known_on = day
            start = known.start()
        else:
            if read.date is not None:
                raise QuestionError("the question gives two dates of service; ask one date at a time")
            read.date = day
        text = text[:start] + " " + text[end:]
    return text


def _take_names(text: str, names: dict[str, str], into: list[str]) -> str:
    """Longest names first, whole words, any case."""
    for name in sorted(names, key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", re.I)
        if pattern.search(text):
            if names[name] not in into:
                into.append(names[name])
            text = pattern.sub(" ", text)
    return text


def _matching_kinds(words: list[str], kinds: Iterable[str]) -> list[str]:
    wanted = [_KIND_WORDS.get(w, {w}) for w in words]
    found = []
    for kind in kinds:
        parts = set(kind.split("-")) | {kind}
        if all(options & parts or {o.rstrip("s") for o in options} & parts for options in wanted):
            found.append(kind)
    return sorted(found)


def read_question(text: str, payer_names: dict[str, str], kinds: Iterable[str]) -> ReadQuestion:
    """``payer_names`` maps every way of naming a payer (its key, its names) to its key;
    ``kinds`` are the code kinds of the code table."""
    read = ReadQuestion()
    text = _take_dates(text, read)
    text = _take_names(text, payer_names, read.payers)
    states: list[str] = []
    text = _take_names(text, {name: code for code, name in STATES.items()}, states)
    for pattern, replacement in _PHRASES:
        text = re.sub(pattern, replacement, text, flags=re.I)
    tokens = re.findall(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", text)
    leftover: list[str] = []
    unclear: list[str] = []

    def after(i: int, skip: Iterable[str] = ("a", "an", "the")) -> tuple[str | None, int]:
        """The next word after position i, past articles, and its position."""
        j = i + 1
        while j < len(tokens) and tokens[j].lower() in skip:
            j += 1
        return (tokens[j], j) if j < len(tokens) else (None, j)

    def provider_of(word: str) -> str | None:
        return next((p for p in PROVIDER_TYPES if p.lower() == word.lower()), None)

    i = 0
    while i < len(tokens):
        word, low = tokens[i], tokens[i].lower()
        following, j = after(i)
        if low in ("modifier", "modifiers", "mod") and following and re.fullmatch(r"[A-Za-z0-9]{2}", following):
            while following and re.fullmatch(r"[A-Za-z0-9]{2}", following) and following.lower() not in SMALL_WORDS:
                read.modifiers.append(following.upper())
                i = j
                following, j = after(i, ("and", "a", "an", "the"))
            i += 1
            continue
        if low == "pos" and following and following.isdigit() and len(following) <= 2:
            read.pos = following.zfill(2)
        elif low in ("by", "provider") and following and provider_of(following):
            read.provider = provider_of(following)
        elif low in ("in", "for") and following and following.upper() in STATES and following.lower() not in (
                "in", "me", "or", "ok", "hi", "oh", "pa", "ma", "md", "de", "la", "co") or (
                low in ("in", "for") and following and following.isupper() and following in STATES):
            states.append(following.upper())
        elif low in ("at", "in") and following and following.lower() in LOCATIONS:
            read.location = following.lower()
        else:
            j = i  # one word
            if _CODE.match(word):
                read.codes.append(word.upper())
            elif low in MODALITIES:
                read.modality = MODALITIES[low]
                leftover.append(low)  # also a word of a kind ("audio-only E/M")
            elif low == "home":
                read.location = "home"
            elif low in _PLAIN_PROVIDERS:
                read.provider = provider_of(low)
            elif word.isupper() and len(word) == 2 and word in STATES:
                if provider_of(word):
                    unclear.append(f"'{word}' (a state or a provider type? say 'in {word}' or 'by {word}')")
                else:
                    states.append(word)
            elif word.isdigit() and len(word) <= 2:
                unclear.append(f"'{word}' (a modifier or a place of service? say 'modifier {word}' or 'POS {word}')")
            elif low not in SMALL_WORDS:
                leftover.append(low)
        i = j + 1

    read.state = _one(states, "states")
    modality_words = {w for w in leftover if w in MODALITIES}
    kind_words = [w for w in leftover if w not in modality_words]
    if kind_words:
        read.kinds = _matching_kinds(kind_words + sorted(modality_words), kinds)
        if not read.kinds:
            read.kinds = _matching_kinds(kind_words, kinds)
        if not read.kinds:
            unclear.extend(f"'{w}'" for w in kind_words)
    if unclear:
        raise QuestionError("did not understand " + ", ".join(unclear) + ". A question names a code or a kind of "
                            "code (e.g. 'audio-only E/M', 'psychotherapy add-on'), and may name payers, a state, "
                            "a date, modifiers, POS, where the patient is and the provider type")
    if not read.codes and not read.kinds:
        raise QuestionError("the question names no procedure code (e.g. 99213 or G2212) and no kind of code "
                            "(e.g. 'audio-only E/M')")
    return read


def _one(values: list[str], what: str) -> str | None:
    unique = list(dict.fromkeys(values))
    if len(unique) > 1:
        raise QuestionError(f"the question names two {what} ({', '.join(unique)}); ask one at a time")
    return unique[0] if unique else None
