"""CMS's published files, read as a user downloads them: tab-delimited text, CSV, Excel
workbooks, or the zip they come in.

Each kind has its columns matched by name, with the variants the files have used over the
years. Every file opens with a copyright preamble of a few rows, and some workbooks split the
header over two rows; the header is the first row that names every required column. A column
the layout does not know, a bad code, date or indicator fails with ``file:line: what is wrong``.

Layouts (checked 2026-11-30 against the Medicaid NCCI Edit Design Manual / Technical Guidance
Manual publication formats and CMS's Medicare NCCI, PFS and telehealth download pages):

- ``ncci-ptp``: Column 1, Column 2, "*=in existence prior to 1996", Effective Date, Deletion
  Date ("*" while in force), Modifier (0 not allowed, 1 allowed, 9 not applicable), PTP Edit
  Rationale. Dates YYYYMMDD. Practitioner edits come split over several files a release.
- ``ncci-mue``: HCPCS/CPT Code, Practitioner Services MUE Values, MUE Adjudication Indicator
  ("2 Date of Service Edit: Policy"), MUE Rationale.
- ``ncci-addon``: AOC_Edit_Type, Add-On_Code, AOC_DelDT, Primary_Code ("CCCCC" for type 2),
  Primary_Code_DelDT, AOC_Edit_EffDT, AOC_Edit_DelDT, Special_Instruction_Notes. Dates are
  Julian (YYYYDDD).
- ``mpfs-indicators``: the PFS Relative Value File (PPRRVU): HCPCS, MOD, STATUS CODE, GLOB DAYS
  and the non-facility TOTAL RVUs, among some thirty columns whose values are not read.
- ``telehealth-list``: HCPCS (or Code), Short Descriptor, Status, "Can Audio-only Interaction
  Meet the Requirements?".

Descriptors are never read or stored: CPT descriptors are the AMA's.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from functools import lru_cache
from typing import Callable, Iterator

KINDS = ("ncci-ptp", "ncci-mue", "ncci-addon", "mpfs-indicators", "telehealth-list")
HEADER_SEARCH_ROWS = 40
_CODE = re.compile(r"^[A-Z0-9]{4}[A-Z0-9]$")
_MEMBER_TYPES = (".txt", ".csv", ".xlsx")


class LayoutError(Exception):
    """A file that is not in the layout its kind reads: ``file:line: what is wrong``."""


@dataclass(frozen=True)
class Column:
    name: str
    variants: tuple[str, ...]  # normalized header texts (see _norm); a trailing * matches a prefix
    required: bool = True


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_PTP = (
    Column("column1", ("column1", "column1code", "col1")),
    Column("column2", ("column2", "column2code", "col2")),
    Column("prior_1996", ("inexistencepriorto1996", "inexistencepriorto1996*", "priorto1996*"), False),
    Column("effective", ("effectivedate", "effectivedate*", "effective")),
    Column("deletion", ("deletiondate", "deletiondate*", "deletion")),
    Column("modifier", ("modifier*", "modifierindicator*", "modifierindicator")),
    Column("rationale", ("ptpeditrationale", "rationale", "ptpeditrationale*"), False),
)
_MUE = (
    Column("code", ("hcpcscptcode", "hcpcs", "hcpcscode", "cpthcpcscode", "code")),
    Column("value", ("practitionerservicesmuevalues", "practitionerservicesmuevalue", "muevalues", "muevalue",
                     "mue", "*servicesmuevalues")),
    Column("mai", ("mueadjudicationindicator", "adjudicationindicator", "mai")),
    Column("rationale", ("muerationale", "rationale"), False),
)
_ADDON = (
    Column("type", ("aocedittype", "edittype", "aoctype")),
    Column("addon", ("addoncode", "aoc")),
    Column("addon_deleted", ("aocdeldt", "aocdeldtjulian", "aocdeletiondate"), False),
    Column("primary", ("primarycode",)),
    Column("primary_deleted", ("primarycodedeldt", "primarycodedeldtjulian", "primarycodedeletiondate"), False),
    Column("effective", ("aocediteffdt", "aocediteffdtjulian", "aocediteffectivedate", "editeffectivedate")),
    Column("deletion", ("aoceditdeldt", "aoceditdeldtjulian", "aoceditdeletiondate")),
    Column("notes", ("specialinstructionnotes", "notes"), False),
)
# The RVU file's other columns: known, so a renamed or new one is noticed, but not read.
_RVU_OTHER = ("description", "notusedformedicarepayment", "workrvu", "pervu", "naindicator", "mprvu",
              "total", "pctcind", "preop", "intraop", "postop", "multproc", "bilatsurg", "asstsurg", "cosurg",
              "teamsurg", "endobase", "convfactor", "physiciansupervisionofdiagnosticprocedures",
              "calculationflag", "diagnosticimagingfamilyindicator", "nonfacilitypeusedforoppspaymentamount",
              "facilitypeusedforoppspaymentamount", "mpusedforoppspaymentamount", "nonfacpervu",
              "facilitypervu", "facpervu", "nonfacilitytotal", "facilitytotal", "nonfactotal", "factotal",
              "nonfacnaindicator", "facilitynaindicator", "facnaindicator", "nonfacilitypervu")
_MPFS = (
    Column("code", ("hcpcs", "hcpcscode", "code")),
    Column("modifier", ("mod", "modifier")),
    Column("status", ("statuscode", "status")),
    Column("global_days", ("globdays", "globaldays", "global")),
    # The non-facility total: "TOTAL" under the NON-FACILITY heading (the first TOTAL) in the
    # two-row header, or named whole in a one-row header.
    Column("rvu", ("nonfacilitytotal", "nonfactotal", "total"), False),
)
_TELEHEALTH = (
    Column("code", ("hcpcs", "code", "hcpcscptcode", "cpthcpcscode", "hcpcscode", "cptcode")),
    Column("descriptor", ("shortdescriptor", "descriptor", "shortdescription", "description"), False),
    Column("status", ("status", "statusofcode*"), False),
    Column("audio_only", ("canaudioonlyinteractionmeettherequirements", "audioonly*", "canaudioonly*"), False),
    Column("effective", ("effectivedate", "dateadded", "added*"), False),
)
COLUMNS: dict[str, tuple[Column, ...]] = {"ncci-ptp": _PTP, "ncci-mue": _MUE, "ncci-addon": _ADDON,
                                          "mpfs-indicators": _MPFS, "telehealth-list": _TELEHEALTH}
_IGNORED = {"mpfs-indicators": frozenset(_norm(c) for c in _RVU_OTHER)}


def _matches(variant: str, header: str) -> bool:
    if variant.startswith("*"):
        return header.endswith(variant[1:])
    if variant.endswith("*"):
        return header.startswith(variant[:-1])
    return header == variant


# ---- reading any of the published file types ------------------------------------------------

Row = tuple[int, list[str]]  # (line or row number in its file, cells)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.strftime("%Y%m%d")
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    return str(value).strip()


def _text_rows(data: bytes) -> Iterator[Row]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")  # CMS's older text files are Windows-1252
    head = text[:20000]
    delimiter = "\t" if head.count("\t") >= head.count(",") and "\t" in head else ","
    for number, cells in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), 1):
        yield number, [c.strip() for c in cells]


def _xlsx_rows(data: bytes, shown: str) -> Iterator[Row]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a file that is not a workbook
        raise LayoutError(f"{shown}:1: not an Excel workbook ({type(exc).__name__})") from None
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), 1):
            yield number, [_cell(v) for v in values]
    finally:
        book.close()


def _rows_of(name: str, data: bytes, shown: str) -> Iterator[Row]:
    if name.lower().endswith(".xlsx"):
        return _xlsx_rows(data, shown)
    return _text_rows(data)


def open_file(path: Path) -> Iterator[tuple[str, Iterator[Row]]]:
    """(shown name, rows) for a file, or for each table in a zip as CMS ships them."""
    shown = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LayoutError(f"{shown}:1: cannot read ({exc.strerror})") from None
    if data[:4] == b"PK\x03\x04" and not shown.lower().endswith(".xlsx"):
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise LayoutError(f"{shown}:1: not a readable zip file") from None
        members = sorted(n for n in archive.namelist() if n.lower().endswith(_MEMBER_TYPES)
                         and not n.startswith("__MACOSX"))
        # A zip with the same table as text and as a workbook: read the text, it is faster.
        stems = {n.rsplit(".", 1)[0] for n in members if not n.lower().endswith(".xlsx")}
        members = [n for n in members if not (n.lower().endswith(".xlsx") and n.rsplit(".", 1)[0] in stems)]
        if not members:
            raise LayoutError(f"{shown}:1: the zip holds no .txt, .csv or .xlsx table")
        for member in members:
            label = f"{shown}/{member}"
            yield label, _rows_of(member, archive.read(member), label)
        return
    yield shown, _rows_of(shown, data, shown)


# ---- headers --------------------------------------------------------------------------------


def find_header(kind: str, rows: Iterator[Row], shown: str) -> tuple[dict[str, int], Iterator[Row]]:
    """The column positions of ``kind``'s columns, and the rows after the header."""
    columns = COLUMNS[kind]
    ignored = _IGNORED.get(kind, frozenset())
    required = [c for c in columns if c.required]
    seen = 0
    for number, cells in rows:
        seen += 1
        normalized = [_norm(c) for c in cells]
        found: dict[str, int] = {}
        for column in columns:
            for position, header in enumerate(normalized):
                if header and any(_matches(v, header) for v in column.variants) and column.name not in found:
                    if position not in found.values():
                        found[column.name] = position
                        break
        if all(c.name in found for c in required):
            used = set(found.values())
            for position, header in enumerate(normalized):
                if header and position not in used and header not in ignored:
                    raise LayoutError(f"{shown}:{number}: unknown column '{cells[position]}' for {kind} "
                                      f"(known: {', '.join(c.name for c in columns)})")
            return found, rows
        if seen >= HEADER_SEARCH_ROWS:
            break
    names = ", ".join(c.name for c in required)
    raise LayoutError(f"{shown}:1: no header row naming the {kind} columns ({names}) in its first "
                      f"{HEADER_SEARCH_ROWS} rows: is this a {kind} file?")


# ---- values ---------------------------------------------------------------------------------
# A release has a million and a half rows but a few thousand distinct codes and dates: each
# distinct text is checked once. Dates come out as ISO text, as the store keeps them.

_MISSING_DATES = ("", "*", "0", "9999999", "99991231")


@lru_cache(maxsize=1 << 16)
def _iso(text: str) -> str | None:
    """A CMS date (YYYYMMDD, Julian YYYYDDD, ISO, or M/D/YYYY) as ISO text; None when it is none."""
    try:
        if len(text) == 8 and text.isdigit():
            return dt.date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
        if len(text) == 7 and text.isdigit():  # Julian: year and day of the year
            day = dt.date(int(text[:4]), 1, 1) + dt.timedelta(days=int(text[4:]) - 1)
            return day.isoformat() if day.year == int(text[:4]) else None
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return dt.date.fromisoformat(text).isoformat()
        if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", text):
            month, day_, year = (int(p) for p in text.split("/"))
            return dt.date(year, month, day_).isoformat()
    except ValueError:
        return None
    return None


def _date(value: str, shown: str, number: int, what: str, optional: bool = False) -> str | None:
    text = value.strip()
    if optional and text in _MISSING_DATES:
        return None
    found = _iso(text)
    if found is None:
        raise LayoutError(f"{shown}:{number}: {what} '{value}' is not a date (YYYYMMDD, YYYYDDD or YYYY-MM-DD)")
    return found


@lru_cache(maxsize=1 << 16)
def _good_code(text: str) -> str | None:
    code = text.strip().upper()
    return code if _CODE.match(code) else None


def _code(value: str, shown: str, number: int, what: str) -> str:
    code = _good_code(value)
    if code is None:
        raise LayoutError(f"{shown}:{number}: {what} '{value}' is not a 5-character HCPCS/CPT code")
    return code


def _int(value: str, shown: str, number: int, what: str, allowed: tuple[int, ...] | None = None) -> int:
    match = re.match(r"^\s*(\d+)", value)
    if match is None or (allowed is not None and int(match.group(1)) not in allowed):
        extra = f" (one of {', '.join(map(str, allowed))})" if allowed else ""
        raise LayoutError(f"{shown}:{number}: {what} '{value}' is not a valid number{extra}")
    return int(match.group(1))


def _yes(value: str) -> bool | None:
    text = value.strip().lower()
    if text.startswith(("yes", "y", "true", "x")):
        return True
    if text.startswith(("no", "n", "false")):
        return False
    return None


def _get(cells: list[str], found: dict[str, int], name: str) -> str:
    position = found.get(name)
    return cells[position] if position is not None and position < len(cells) else ""


# ---- each kind's rows -------------------------------------------------------------------------
# Rows are plain tuples in the order of the kind's table columns (see tables.py), dates as ISO text.

_INDICATORS = {"0": 0, "1": 1, "9": 9}


def _ptp(cells, found, shown, number):
    try:  # the common row, in a few lookups (a release is 1.5 million of them)
        c1, c2 = _good_code(cells[found["column1"]]), _good_code(cells[found["column2"]])
        effective = _iso(cells[found["effective"]].strip())
        deletion_text = cells[found["deletion"]].strip()
        deletion = None if deletion_text in _MISSING_DATES else _iso(deletion_text)
        modifier = _INDICATORS.get(cells[found["modifier"]].strip()[:1])
        if c1 and c2 and effective and modifier is not None and (deletion or deletion_text in _MISSING_DATES):
            return c1, c2, effective, deletion, modifier, _get(cells, found, "rationale") or None
    except IndexError:
        pass
    # Something is wrong with the row: say what, field by field.
    modifier = _int(_get(cells, found, "modifier"), shown, number, "modifier indicator", (0, 1, 9))
    return (_code(_get(cells, found, "column1"), shown, number, "column 1 code"),
            _code(_get(cells, found, "column2"), shown, number, "column 2 code"),
            _date(_get(cells, found, "effective"), shown, number, "effective date"),
            _date(_get(cells, found, "deletion"), shown, number, "deletion date", optional=True),
            modifier, _get(cells, found, "rationale") or None)


def _mue(cells, found, shown, number):
    return (_code(_get(cells, found, "code"), shown, number, "code"),
            _int(_get(cells, found, "value"), shown, number, "MUE value"),
            _int(_get(cells, found, "mai"), shown, number, "MUE adjudication indicator", (1, 2, 3)),
            _get(cells, found, "rationale") or None)


def _addon(cells, found, shown, number):
    primary = _get(cells, found, "primary").strip().upper()
    ends = [_date(_get(cells, found, name), shown, number, label, optional=True)
            for name, label in (("deletion", "edit deletion date"), ("addon_deleted", "add-on deletion date"),
                                ("primary_deleted", "primary deletion date"))]
    ends = [e for e in ends if e is not None]
    return (_code(_get(cells, found, "addon"), shown, number, "add-on code"),
            None if primary in ("", "CCCCC") else _code(primary, shown, number, "primary code"),
            _int(_get(cells, found, "type"), shown, number, "AOC edit type", (1, 2, 3)),
            _date(_get(cells, found, "effective"), shown, number, "edit effective date"),
            min(ends) if ends else None)


def _mpfs(cells, found, shown, number):
    status = _get(cells, found, "status").strip().upper()
    if not re.fullmatch(r"[A-Z]", status):
        raise LayoutError(f"{shown}:{number}: status code '{status}' is not one letter")
    glob = _get(cells, found, "global_days").strip().upper() or None
    if glob is not None and not re.fullmatch(r"\d{3}|[A-Z]{3}", glob):
        raise LayoutError(f"{shown}:{number}: global days '{glob}' is not 000, 010, 090 or a letter code")
    modifier = _get(cells, found, "modifier").strip().upper()
    if modifier and not re.fullmatch(r"[A-Z0-9]{2}", modifier):
        raise LayoutError(f"{shown}:{number}: modifier '{modifier}' is not two letters or digits")
    rvu_text = _get(cells, found, "rvu").strip()
    try:
        rvu = float(rvu_text) if rvu_text else None
    except ValueError:
        raise LayoutError(f"{shown}:{number}: total RVU '{rvu_text}' is not a number") from None
    return (_code(_get(cells, found, "code"), shown, number, "HCPCS"), modifier, status, glob, rvu)


def _telehealth(cells, found, shown, number):
    status = _get(cells, found, "status").strip().lower() or None
    return (_code(_get(cells, found, "code"), shown, number, "code"), status,
            _yes(_get(cells, found, "audio_only")) if "audio_only" in found else None,
            _date(_get(cells, found, "effective"), shown, number, "effective date", optional=True))


PARSERS: dict[str, Callable] = {"ncci-ptp": _ptp, "ncci-mue": _mue, "ncci-addon": _addon,
                                "mpfs-indicators": _mpfs, "telehealth-list": _telehealth}


def read_rows(kind: str, path: Path) -> Iterator[tuple]:
    """Every data row of one downloaded file (or zip) of ``kind``, as a table tuple."""
    parse = PARSERS[kind]
    for shown, rows in open_file(path):
        found, rest = find_header(kind, rows, shown)
        for number, cells in rest:
            if not any(cells):
                continue
            first = cells[0] if cells else ""
            if kind == "mpfs-indicators" and not _CODE.match(_get(cells, found, "code").strip().upper()):
                continue  # the RVU file's second header row and its footnotes
            if first.startswith(("*", "CPT only", "CPT codes")) and not _CODE.match(first.upper()):
                continue  # notes under the table
            yield parse(cells, found, shown, number)
