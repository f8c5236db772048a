"""appointment calendar uid and sequence (a rescheduled appointment is the same event)

Revision ID: i11
Revises: i16
Create Date: 2026-11-30 14:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "i11"
down_revision: str | Sequence[str] | None = "i16"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.add_column(
            sa.Column(
                "calendar_uid",
                sqlmodel.sql.sqltypes.AutoString(length=80),
                nullable=False,
                server_default="",
            )
        )
        batch.add_column(sa.Column("sequence", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.drop_column("sequence")
        batch.drop_column("calendar_uid")
