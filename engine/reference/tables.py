"""The store's tables for imported CMS releases: one row per release, and each kind's rows.

Rows belong to one release and are never updated: a later release is imported beside the
earlier ones, so a judgement as known on any date can still find what was known then.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from .kinds import TABLE_NAMES


class RefRelease(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("kind", "program", "name", name="uq_refrelease_name"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # ncci-ptp, ncci-mue, ncci-addon, mpfs-indicators, telehealth-list
    program: str  # medicare or medicaid
    name: str  # 2026Q1, 2026 (a calendar year), 2026Q1r1 (a correction)
    period_start: dt.date
    period_end: dt.date
    published: dt.date  # when its rows became known (the known axis)
    digest: str  # of the rows as read, so the same release imported twice changes nothing
    files: str  # the file names it was read from, as JSON
    rows: int
    imported_at: dt.datetime


class PtpEdit(SQLModel, table=True):
    __tablename__ = TABLE_NAMES["ncci-ptp"]
    __table_args__ = (Index("ix_ptpedit_lookup", "release_id", "column2", "column1"),)
    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="refrelease.id")
    column1: str
    column2: str
    effective: dt.date
    deletion: dt.date | None  # the first date of service the edit no longer applies to
    modifier: int  # 0 no modifier bypasses it, 1 an NCCI-associated modifier may, 9 not applicable
    rationale: str | None


class MueEdit(SQLModel, table=True):
    __tablename__ = TABLE_NAMES["ncci-mue"]
    __table_args__ = (Index("ix_mueedit_lookup", "release_id", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="refrelease.id")
    code: str
    value: int  # units per day (per line for MAI 1)
    mai: int  # 1 line edit, 2 date-of-service edit (policy), 3 date-of-service edit (clinical)
    rationale: str | None


class AddonEdit(SQLModel, table=True):
    __tablename__ = TABLE_NAMES["ncci-addon"]
    __table_args__ = (Index("ix_addonedit_lookup", "release_id", "addon"),)
    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="refrelease.id")
    addon: str
    primary_code: str | None  # None: type 2, the contractor names the primaries
    edit_type: int  # 1, 2 or 3
    effective: dt.date
    deletion: dt.date | None


class MpfsIndicator(SQLModel, table=True):
    __tablename__ = TABLE_NAMES["mpfs-indicators"]
    __table_args__ = (Index("ix_mpfsindicator_lookup", "release_id", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="refrelease.id")
    code: str
    modifier: str  # "" for the code's global row, else 26, TC, 53...
    status: str  # MPFS status code: A, B, C, I, N, R, T, X...
    global_days: str | None  # 000, 010, 090, MMM, XXX, YYY, ZZZ
    rvu: float | None = None  # total non-facility relative value units (what suggest ranks codings by)


class TelehealthCode(SQLModel, table=True):
    __tablename__ = TABLE_NAMES["telehealth-list"]
    __table_args__ = (Index("ix_telehealthcode_lookup", "release_id", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="refrelease.id")
    code: str
    status: str | None  # permanent, provisional...
    audio_only: bool | None  # the list says audio-only interaction can meet the requirements
    effective: dt.date | None  # where the list dates the code's addition


ROW_TABLES = {"ncci-ptp": PtpEdit, "ncci-mue": MueEdit, "ncci-addon": AddonEdit,
              "mpfs-indicators": MpfsIndicator, "telehealth-list": TelehealthCode}
