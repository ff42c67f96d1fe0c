"""Runs written in chunks: where a large run's input came from, and whether the run is complete.

Runs stored before this revision were written whole, so they are complete.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("sources", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("complete", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_column("complete")
        batch.drop_column("sources")
