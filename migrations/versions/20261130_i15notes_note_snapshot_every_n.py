"""shared notes: the snapshot's own revision; the log keyed by (note, revision)

Revision ID: i15notes
Revises: i15totp
Create Date: 2026-11-30 18:10:00

`shared_note.text_revision` is the revision `text` is at: the text is rewritten every
few revisions instead of on every keystroke (server/notes/service.py, SNAPSHOT_EVERY).
Existing notes hold the text at their latest revision, so text_revision = revision.
`note_update` loses its surrogate id (and the unique (note_id, revision) beside it):
(note_id, revision) becomes the primary key.
"""
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = 'i15notes'
down_revision: str | Sequence[str] | None = 'i15totp'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('shared_note', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_revision', sa.Integer(), nullable=False, server_default='0'))
    op.execute('UPDATE shared_note SET text_revision = revision')
    with op.batch_alter_table('shared_note', schema=None) as batch_op:
        batch_op.alter_column('text_revision', server_default=None)
    with op.batch_alter_table('note_update', schema=None) as batch_op:
        batch_op.drop_constraint('uq_note_update_revision', type_='unique')
        # PostgreSQL drops the primary key (and the id's sequence) with the column.
        batch_op.drop_column('id')
        batch_op.create_primary_key('note_update_pkey', ['note_id', 'revision'])


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('note_update_pkey', 'note_update', type_='primary')
        op.execute('ALTER TABLE note_update ADD COLUMN id SERIAL PRIMARY KEY')
        op.create_unique_constraint('uq_note_update_revision', 'note_update', ['note_id', 'revision'])
    else:
        # SQLite: the copied table numbers the rows itself (INTEGER PRIMARY KEY).
        with op.batch_alter_table('note_update', schema=None, recreate='always') as batch_op:
            batch_op.drop_constraint('note_update_pkey', type_='primary')
            batch_op.add_column(sa.Column('id', sa.Integer(), primary_key=True), insert_before='note_id')
            batch_op.create_unique_constraint('uq_note_update_revision', ['note_id', 'revision'])
    # The snapshot must be the text at `revision` again: fold the log into it first.
    _fold_all()
    with op.batch_alter_table('shared_note', schema=None) as batch_op:
        batch_op.drop_column('text_revision')


def _fold_all() -> None:
    """Before dropping text_revision: make every note's text the text at its revision."""
    bind = op.get_bind()
    notes = bind.execute(
        sa.text('SELECT id, text, text_revision FROM shared_note WHERE text_revision < revision')
    ).all()
    for note_id, text, since in notes:
        rows = bind.execute(
            sa.text(
                'SELECT op FROM note_update WHERE note_id = :note AND revision > :since'
                ' ORDER BY revision'
            ),
            {'note': note_id, 'since': since},
        ).all()
        for (raw,) in rows:
            text = _apply(text, json.loads(raw))
        bind.execute(
            sa.text('UPDATE shared_note SET text = :text WHERE id = :note'),
            {'text': text, 'note': note_id},
        )


def _apply(text: str, components: list[Any]) -> str:
    """One logged operation (server/notes/ot.py's JSON form), applied: kept self-contained."""
    out, at = [], 0
    for component in components:
        if isinstance(component, str):
            out.append(component)
        elif component > 0:
            out.append(text[at:at + component])
            at += component
        else:
            at -= component
    return ''.join(out) + text[at:]
