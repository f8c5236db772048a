"""hardening: two-factor sign-in, pending login sessions, recovery codes

Revision ID: i14
Revises: i11
Create Date: 2026-11-30 14:15:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
import server.clock

revision: str = 'i14'
down_revision: str | Sequence[str] | None = 'i11'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('recovery_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('used_at', server.clock.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('recovery_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_code_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_enabled_at', server.clock.UTCDateTime(), nullable=True))
    with op.batch_alter_table('loginsession', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('loginsession', schema=None) as batch_op:
        batch_op.drop_column('pending')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('totp_enabled_at')
        batch_op.drop_column('totp_secret')
    with op.batch_alter_table('recovery_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_code_user_id'))
    op.drop_table('recovery_code')
