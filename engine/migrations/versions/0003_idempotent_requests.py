"""Idempotent HTTP requests: the same Idempotency-Key returns the stored answer.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotentrequest",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("request_digest", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_table("idempotentrequest")
