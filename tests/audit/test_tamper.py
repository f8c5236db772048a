"""The hash chain detects a modified, a deleted and an inserted audit event, both through
server.audit.service.verify and `dari audit verify`; the key the database does not hold
and the checkpoints kept outside it detect a truncated tail with the head moved back, a
deleted head and a recomputed chain; and a writer that keeps its session across commits
still chains after the others. Each test tampers with its own scratch database,
never with the shared one."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from server import migrate
from server.audit import service as audit
from server.audit.models import AuditEvent, AuditHead
from server.cli import app as cli
from server.db import engine_for
from server.settings import get_settings
from tests.conftest import PG_ADMIN_URL, TEST_SECRET


@pytest.fixture
def scratch_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A new, migrated database of the same backend, holding five audit events."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        name = None
    else:
        name = f"dari_scratch_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    audit.configure(url, TEST_SECRET, tmp_path / "audit-checkpoints.log")
    engine = create_engine(url)
    with Session(engine) as session:
        for n in range(5):
            audit.record(session, "consult.read", actor_id=None, object_id=f"c{n}", ip="10.0.0.1")
            session.commit()  # one checkpoint per commit, outside the database
    engine.dispose()
    yield url
    engine_for(url).dispose()  # cli_verify and others may have opened it
    if name is not None:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def problems_of(url: str) -> list[audit.Problem]:
    engine = create_engine(url)
    with Session(engine) as session:
        found = audit.verify(session)
    engine.dispose()
    return found


def cli_audit(url: str, monkeypatch: pytest.MonkeyPatch, command: str) -> tuple[int, str]:
    """`dari audit COMMAND` against that database: (exit code, output)."""
    monkeypatch.setenv("DARI_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["audit", command])
    finally:
        get_settings.cache_clear()
    engine_for(url).dispose()
    return result.exit_code, result.output


def cli_verify(url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    return cli_audit(url, monkeypatch, "verify")


def tamper(url: str, *statements: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def test_a_session_kept_across_commits_appends_after_another_writer(scratch_url: str) -> None:
    """A session that keeps its objects across commits must not chain onto the head it
    loaded earlier: another writer may have appended since (a duplicate seq, seen in CI)."""
    engine = create_engine(scratch_url)
    with Session(engine, expire_on_commit=False) as keeper:
        audit.record(keeper, "consult.read", actor_id=None, object_id="k1")
        keeper.commit()
        # Anything alive that holds it keeps the loaded head in the identity map.
        held = keeper.get(AuditHead, 1)
        with Session(engine) as other:
            audit.record(other, "consult.read", actor_id=None, object_id="o1")
            other.commit()
        audit.record(keeper, "consult.read", actor_id=None, object_id="k2")
        keeper.commit()
        seqs = keeper.exec(select(AuditEvent.seq).order_by(col(AuditEvent.seq))).all()
    engine.dispose()
    assert list(seqs) == list(range(1, 9))
    assert held is not None and held.seq == 8
    assert problems_of(scratch_url) == []


def test_intact_log_verifies(scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert problems_of(scratch_url) == []
    assert cli_verify(scratch_url, monkeypatch) == (0, "audit log intact\n")


def test_modified_event_is_detected(scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tamper(scratch_url, "UPDATE auditevent SET ip = '6.6.6.6' WHERE seq = 3")
    problems = problems_of(scratch_url)
    assert [p.seq for p in problems] == [3]
    assert "changed" in problems[0].message
    code, output = cli_verify(scratch_url, monkeypatch)
    assert code == 1 and "event 3" in output


def test_deleted_event_is_detected(scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tamper(scratch_url, "DELETE FROM auditevent WHERE seq = 2")
    problems = problems_of(scratch_url)
    assert any(p.seq == 3 and "missing" in p.message for p in problems)
    assert cli_verify(scratch_url, monkeypatch)[0] == 1


def test_event_appended_behind_the_chain_is_detected(scratch_url: str) -> None:
    # Correctly chained to event 5, but not through audit.record: the head disagrees.
    tamper(
        scratch_url,
        "INSERT INTO auditevent (seq, at, action, object_type, object_id, ip, detail, "
        "prev_hash, hash) SELECT 6, at, 'consult.read', '', 'forged', '', '{}', hash, hash "
        "FROM auditevent WHERE seq = 5",
    )
    problems = problems_of(scratch_url)
    assert any(p.seq == 6 for p in problems)


def test_deleted_newest_event_is_detected(scratch_url: str) -> None:
    tamper(scratch_url, "DELETE FROM auditevent WHERE seq = 5")
    assert any("head says 5" in p.message for p in problems_of(scratch_url))


def test_inserted_event_is_detected(scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A forged event slipped in between 2 and 3, re-using a plausible hash.
    tamper(
        scratch_url,
        "UPDATE auditevent SET seq = seq + 100 WHERE seq >= 3",
        "UPDATE auditevent SET seq = seq - 99 WHERE seq >= 103",
        "INSERT INTO auditevent (seq, at, action, object_type, object_id, ip, detail, "
        "prev_hash, hash) SELECT 3, at, 'consult.read', '', 'forged', '', '{}', hash, hash "
        "FROM auditevent WHERE seq = 2",
    )
    problems = problems_of(scratch_url)
    assert any(p.seq == 3 and "changed" in p.message for p in problems)
    assert any("log ends at 6 but its head says 5" in p.message for p in problems)
    assert cli_verify(scratch_url, monkeypatch)[0] == 1


def _rehash(
    url: str,
    from_seq: int,
    digest: Callable[[str, AuditEvent], str],
    *,
    ip: str | None = None,
    until: int = 10**9,
) -> None:
    """Rewrite events `from_seq`..`until` with `digest` (optionally changing the first
    one's ip), each linked to the one before; the head follows."""
    engine = create_engine(url)
    with Session(engine) as session:
        events = list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())
        session.expunge_all()
    engine.dispose()
    statements, prev = [], audit.GENESIS
    for event in events:
        if from_seq <= event.seq <= until:
            if ip is not None and event.seq == from_seq:
                event.ip = ip
                statements.append(f"UPDATE auditevent SET ip = '{ip}' WHERE seq = {event.seq}")
            event.prev_hash = prev
            event.hash = digest(prev, event)
            statements.append(
                f"UPDATE auditevent SET prev_hash = '{event.prev_hash}', hash = '{event.hash}' "
                f"WHERE seq = {event.seq}"
            )
        prev = event.hash
    statements.append(f"UPDATE audithead SET hash = '{prev}' WHERE id = 1")
    tamper(url, *statements)


def _recompute_from(url: str, seq: int, key: bytes) -> None:
    """An attacker edits event `seq` and recomputes every later hash and the head."""
    _rehash(url, seq, lambda prev, event: audit._digest(prev, event, key), ip="6.6.6.6")


def _rehash_unkeyed(url: str, from_seq: int, ip: str | None = None, until: int = 10**9) -> None:
    """As the first release hashed its chain: without a key."""
    _rehash(url, from_seq, audit._legacy_digest, ip=ip, until=until)


def test_truncated_tail_with_the_head_moved_back_is_detected(
    scratch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tamper(
        scratch_url,
        "DELETE FROM auditevent WHERE seq = 5",
        "UPDATE audithead SET seq = 4, hash = (SELECT hash FROM auditevent WHERE seq = 4)",
    )
    problems = problems_of(scratch_url)
    assert [p.seq for p in problems] == [5]
    assert "truncated" in problems[0].message
    code, output = cli_verify(scratch_url, monkeypatch)
    assert code == 1 and "truncated" in output


def test_deleted_head_is_detected(scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tamper(scratch_url, "DELETE FROM audithead")
    assert any("head is gone" in p.message for p in problems_of(scratch_url))
    assert cli_verify(scratch_url, monkeypatch)[0] == 1


def test_chain_recomputed_without_the_key_is_detected(scratch_url: str) -> None:
    # Whoever holds only the database does not have the key: a guessed one fails.
    _recompute_from(scratch_url, 3, audit.derive_key("a guessed secret"))
    problems = problems_of(scratch_url)
    assert {p.seq for p in problems if "changed" in p.message} == {3, 4, 5}


def test_chain_recomputed_with_the_key_is_caught_by_the_checkpoints(
    scratch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even with the key, the checkpoints written at the time name the old hashes.
    _recompute_from(scratch_url, 3, audit.derive_key(TEST_SECRET))
    problems = problems_of(scratch_url)
    assert not any("changed" in p.message for p in problems)
    assert {p.seq for p in problems if "rewritten" in p.message} == {3, 4, 5}
    assert cli_verify(scratch_url, monkeypatch)[0] == 1


def test_forged_checkpoint_line_is_detected(scratch_url: str, tmp_path: Path) -> None:
    with (tmp_path / "audit-checkpoints.log").open("a") as handle:
        handle.write('{"seq":9,"hash":"00","at":"2026-01-01T00:00:00+00:00","sig":"beef"}\n')
    assert any("not signed" in p.message for p in problems_of(scratch_url))


def cli_adopt(url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    return cli_audit(url, monkeypatch, "adopt-legacy")


def test_a_first_release_chain_is_adopted_once_and_stays_guarded(
    scratch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database from the first release: its chain was hashed without a key, and it had
    # no checkpoints (they came with the key).
    _rehash_unkeyed(scratch_url, 1)
    (tmp_path / "audit-checkpoints.log").unlink()
    assert {p.seq for p in problems_of(scratch_url)} == {1, 2, 3, 4, 5}
    audit.configure(scratch_url, TEST_SECRET, tmp_path / "audit-checkpoints.log")
    assert cli_adopt(scratch_url, monkeypatch) == (0, "5 first-release event(s) adopted\n")
    assert problems_of(scratch_url) == []
    assert cli_adopt(scratch_url, monkeypatch) == (0, "nothing to adopt\n")
    # The adoption event's HMAC names the last unkeyed hash: the adopted events cannot
    # be edited and rehashed the old way afterwards.
    _rehash_unkeyed(scratch_url, 2, ip="6.6.6.6", until=5)
    problems = {(p.seq, p.message) for p in problems_of(scratch_url)}
    assert (5, "differs from the adopted first-release chain") in problems
    assert (6, "does not follow the previous event") in problems


def test_a_chain_rehashed_without_the_key_cannot_be_adopted_by_a_forger(
    scratch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone with the database only rewrites the whole chain unkeyed: without a keyed
    # adoption event, nothing of it verifies.
    _rehash_unkeyed(scratch_url, 1, ip="6.6.6.6")
    assert {p.seq for p in problems_of(scratch_url) if "changed" in p.message} >= {1, 2, 3}


def test_adoption_refuses_a_broken_first_release_chain(
    scratch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rehash_unkeyed(scratch_url, 1)
    tamper(scratch_url, "UPDATE auditevent SET ip = '6.6.6.6' WHERE seq = 2")
    code, output = cli_adopt(scratch_url, monkeypatch)
    assert code == 2 and "event 2 is not part of an intact first-release chain" in output
    assert {p.seq for p in problems_of(scratch_url)} >= {1, 2, 3, 4, 5}
