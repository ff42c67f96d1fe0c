"""The schema of the first release: policy versions, runs, findings, claim history, denial history.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _effective_columns() -> list[sa.Column]:
    return [sa.Column("published", sa.Date(), nullable=False),
            sa.Column("effective_from", sa.Date(), nullable=False),
            sa.Column("effective_to", sa.Date(), nullable=True)]


def upgrade() -> None:
    op.create_table(
        "policyversion",
        sa.Column("digest", sa.String(), primary_key=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("rule_count", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=True))
    op.create_table(
        "storedclaim",
        sa.Column("claim_id", sa.String(), primary_key=True),
        sa.Column("payer", sa.String(), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True))
    op.create_table(
        "storedremit",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("claim_id", sa.String(), nullable=False),
        sa.Column("production_date", sa.Date(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True))
    op.create_index("ix_storedremit_claim_id", "storedremit", ["claim_id"])
    op.create_table(
        "codevaluerow",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version_digest", sa.String(), sa.ForeignKey("policyversion.digest"), nullable=False),
        sa.Column("layer", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        *_effective_columns(),
        sa.Column("attrs", sa.Text(), nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("confidence", sa.String(), nullable=False))
    op.create_index("ix_codevaluerow_code", "codevaluerow", ["code"])
    op.create_index("ix_codevaluerow_version_digest", "codevaluerow", ["version_digest"])
    op.create_table(
        "policyrule",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version_digest", sa.String(), sa.ForeignKey("policyversion.digest"), nullable=False),
        sa.Column("layer", sa.String(), nullable=False),
        sa.Column("rule_id", sa.String(), nullable=False),
        *_effective_columns(),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=True),
        sa.Column("confidence", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False))
    op.create_index("ix_policyrule_rule_id", "policyrule", ["rule_id"])
    op.create_index("ix_policyrule_version_digest", "policyrule", ["version_digest"])
    op.create_table(
        "run",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy_digest", sa.String(), sa.ForeignKey("policyversion.digest"), nullable=False),
        sa.Column("known_on", sa.Date(), nullable=False),
        sa.Column("input_digest", sa.String(), nullable=False),
        sa.Column("options", sa.String(), nullable=False),
        sa.Column("history_upto", sa.Integer(), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in ("claims", "clean", "review", "reject", "invalid")],
        sa.Column("input", sa.Text(), nullable=True))
    op.create_table(
        "claimrecord",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("claim_id", sa.String(), nullable=False),
        sa.Column("patient_id", sa.String(), nullable=True),
        sa.Column("payer", sa.String(), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True))
    op.create_index("ix_claimrecord_run_id", "claimrecord", ["run_id"])
    op.create_index("ix_claimrecord_claim_id", "claimrecord", ["claim_id"])
    op.create_index("ix_claimrecord_patient_id", "claimrecord", ["patient_id"])
    op.create_table(
        "findingrow",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("claim_position", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.String(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("carc", sa.String(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True))
    op.create_index("ix_findingrow_rule", "findingrow", ["rule"])
    op.create_index("ix_findingrow_run_id", "findingrow", ["run_id"])


def downgrade() -> None:
    for table in ("findingrow", "claimrecord", "run", "policyrule", "codevaluerow", "storedremit", "storedclaim",
                  "policyversion"):
        op.drop_table(table)
