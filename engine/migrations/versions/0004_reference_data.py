"""CMS reference data: releases of NCCI PTP, MUE and add-on edits, MPFS indicators, the telehealth list.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_S = sa.String()


def _rows(name, *columns, index):
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("release_id", sa.Integer(), sa.ForeignKey("refrelease.id"), nullable=False),
        *columns)
    op.create_index(f"ix_{name}_lookup", name, ["release_id", *index])


def upgrade() -> None:
    op.create_table(
        "refrelease",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", _S, nullable=False),
        sa.Column("program", _S, nullable=False),
        sa.Column("name", _S, nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("published", sa.Date(), nullable=False),
        sa.Column("digest", _S, nullable=False),
        sa.Column("files", _S, nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "program", "name", name="uq_refrelease_name"))
    _rows("ptpedit",
          sa.Column("column1", _S, nullable=False), sa.Column("column2", _S, nullable=False),
          sa.Column("effective", sa.Date(), nullable=False), sa.Column("deletion", sa.Date(), nullable=True),
          sa.Column("modifier", sa.Integer(), nullable=False), sa.Column("rationale", _S, nullable=True),
          index=["column2", "column1"])
    _rows("mueedit",
          sa.Column("code", _S, nullable=False), sa.Column("value", sa.Integer(), nullable=False),
          sa.Column("mai", sa.Integer(), nullable=False), sa.Column("rationale", _S, nullable=True),
          index=["code"])
    _rows("addonedit",
          sa.Column("addon", _S, nullable=False), sa.Column("primary_code", _S, nullable=True),
          sa.Column("edit_type", sa.Integer(), nullable=False), sa.Column("effective", sa.Date(), nullable=False),
          sa.Column("deletion", sa.Date(), nullable=True),
          index=["addon"])
    _rows("mpfsindicator",
          sa.Column("code", _S, nullable=False), sa.Column("modifier", _S, nullable=False),
          sa.Column("status", _S, nullable=False), sa.Column("global_days", _S, nullable=True),
          sa.Column("rvu", sa.Float(), nullable=True),
          index=["code"])
    _rows("telehealthcode",
          sa.Column("code", _S, nullable=False), sa.Column("status", _S, nullable=True),
          sa.Column("audio_only", sa.Boolean(), nullable=True), sa.Column("effective", sa.Date(), nullable=True),
          index=["code"])


def downgrade() -> None:
    for name in ("telehealthcode", "mpfsindicator", "addonedit", "mueedit", "ptpedit", "refrelease"):
        op.drop_table(name)
