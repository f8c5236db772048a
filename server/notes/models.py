"""The shared note of a consult: its current text (the snapshot) and its update log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.clock import UTCDateTime, utcnow


class SharedNote(SQLModel, table=True):
    """One per consult. `text` is the text at `text_revision` (the snapshot); the note at
    `revision` is that text plus the logged updates after it, fewer than
    `service.SNAPSHOT_EVERY`, so loading replays a bounded handful of small operations."""

    __tablename__ = "shared_note"

    id: int | None = Field(default=None, primary_key=True)
    consult_id: int = Field(foreign_key="consultrequest.id", unique=True)
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    revision: int = Field(default=0)
    # The revision `text` is at. Rewritten every SNAPSHOT_EVERY revisions (and when the log
    # is compacted or the note signed), not on every keystroke: rewriting a long
    # (TOASTed) text per keystroke made each write cost more WAL as the note grew.
    text_revision: int = Field(default=0)
    # Log rows up to this revision were compacted away (folded into `text`).
    compacted_revision: int = Field(default=0)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    # Set when the report is signed: the note is then read-only for good.
    frozen_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class NoteUpdate(SQLModel, table=True):
    """One acknowledged operation, transformed to apply at `revision` (append-only)."""

    __tablename__ = "note_update"
    # Keyed by (note, revision): one index serves the order of the log, its uniqueness
    # and every catch-up query; no surrogate id (a sequence and one more index per row).
    __table_args__ = (
        # A resent operation (same client, same sequence number) is recognised, never re-applied.
        UniqueConstraint("note_id", "client_id", "client_seq", name="uq_note_update_client_seq"),
    )

    note_id: int = Field(foreign_key="shared_note.id", primary_key=True)
    revision: int = Field(primary_key=True)
    author_id: int = Field(foreign_key="user.id")
    client_id: str = Field(max_length=40)
    client_seq: int
    op: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of components
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
