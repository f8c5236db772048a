"""`dari backup` and `dari restore`: a restore into a fresh deployment has every row,
every attachment (by hash) and an intact audit chain; encryption hides the contents."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session, select

from server.consults import attachments as store
from server.consults.models import ConsultAttachment
from server.db import engine_for
from server.ops import backup
from server.settings import Settings
from tests.conftest import ROOT, TEST_SECRET, _create_pg_database, _drop_pg_database, make_settings
from tests.consults.helpers import make_team, png_bytes
from tests.factories import login

MARKER = "BACKUPMARKER42"


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            names = sorted(inspect(connection).get_table_names())
            return {
                name: int(connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one())
                for name in names
            }
    finally:
        engine.dispose()


@pytest.fixture
def fresh(database_url: str, tmp_path: Path) -> Iterator[Settings]:
    """An empty deployment of the same kind: no table, no attachment."""
    var = tmp_path / "restored"
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{var / 'dari.sqlite3'}"
        yield make_settings(url, var)
        engine_for(url).dispose()
        return
    name, url = _create_pg_database()
    yield make_settings(url, var)
    engine_for(url).dispose()
    _drop_pg_database(name)


@pytest.fixture
def with_attachment(client: TestClient, db: Session) -> str:
    team = make_team(db)
    login(client, team.gp)
    created = client.post(
        "/api/consults",
        json={
            "specialty_id": team.specialty.id,
            "urgency": "soon",
            "mode": "async",
            "patient_chart_number": f"{MARKER}-chart",
            "patient_age": 50,
            "patient_sex": "male",
            "clinical_question": f"{MARKER} question",
        },
    )
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    photo = client.post(
        f"/api/consults/{cid}/attachments?filename=leg.png",
        content=png_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert photo.status_code == 201, photo.text
    return str(cid)


def _check_restored(source: Settings, target: Settings, backed_up: dict[str, int]) -> None:
    # Against the counts the backup saw, not the source's now: the session's database is
    # shared, and the live server's background tasks may have written to it since.
    assert _counts(target.resolved_database_url()) == backed_up
    with Session(engine_for(target.resolved_database_url())) as session:
        rows = session.exec(select(ConsultAttachment)).all()
    assert rows, "no attachment came back"
    root = target.resolved_attachments_dir()
    source_root = source.resolved_attachments_dir()
    checked = 0
    for row in rows:
        # The session's database is shared: other tests' apps keep their files elsewhere.
        if not store.stored_path(source_root, row.sha256).exists():
            continue
        data = store.stored_path(root, row.sha256).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
        checked += 1
    assert checked >= 1
    restored_files = {p.relative_to(root) for p in root.rglob("*") if p.is_file()}
    source_files = {
        p.relative_to(source_root)
        for p in source_root.rglob("*")
        if p.is_file() and not p.name.startswith("upload-")
    }
    assert restored_files == source_files
    env = {
        **os.environ,
        "DARI_DATABASE_URL": target.resolved_database_url(),
        "DARI_SECRET_KEY": TEST_SECRET,
        "DARI_VAR_DIR": str(target.var_dir),
    }
    verified = subprocess.run(
        [sys.executable, "-m", "server.cli", "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stderr
    assert "audit log intact" in verified.stdout


def test_backup_and_restore_plain(
    settings: Settings, fresh: Settings, with_attachment: str, tmp_path: Path
) -> None:
    written = backup.backup(settings, tmp_path / "out")
    manifest = written.manifest
    assert manifest["encrypted"] is False
    assert manifest["row_counts"] == _counts(settings.resolved_database_url())
    assert any(name.startswith("attachments/") for name in manifest["files"])
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((written.path / name).read_bytes()).hexdigest() == entry["sha256"]
    restored = backup.restore(fresh, written.path)
    assert restored.audit_problems == 0
    assert restored.row_counts == manifest["row_counts"]
    _check_restored(settings, fresh, manifest["row_counts"])
    # Into a deployment that is no longer empty: refused, nothing changed.
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(fresh, written.path)


def test_encrypted_backup(
    settings: Settings, fresh: Settings, with_attachment: str, tmp_path: Path
) -> None:
    key = backup.new_key()
    written = backup.backup(settings, tmp_path / "out", key)
    assert written.manifest["encrypted"] is True
    stored = [p for p in written.path.rglob("*") if p.is_file() and p.name != backup.MANIFEST]
    assert stored and all(p.name.endswith(backup.ENCRYPTED_SUFFIX) for p in stored)
    for path in [*stored, written.path / backup.MANIFEST]:
        assert MARKER.encode() not in path.read_bytes()
    with pytest.raises(backup.BackupError, match="DARI_BACKUP_KEY"):
        backup.restore(fresh, written.path)
    with pytest.raises(backup.BackupError, match="does not open"):
        backup.restore(fresh, written.path, backup.new_key())
    restored = backup.restore(fresh, written.path, key)
    assert restored.audit_problems == 0
    _check_restored(settings, fresh, written.manifest["row_counts"])


def test_a_changed_file_is_caught(
    settings: Settings, fresh: Settings, with_attachment: str, tmp_path: Path
) -> None:
    written = backup.backup(settings, tmp_path / "out")
    attachment = next(
        written.path / name for name in written.manifest["files"] if name.startswith("attachments/")
    )
    attachment.write_bytes(attachment.read_bytes() + b"x")
    with pytest.raises(backup.BackupError, match="hash differs"):
        backup.restore(fresh, written.path)
    # Checked before anything was written: the deployment is still empty.
    assert not inspect(engine_for(fresh.resolved_database_url())).get_table_names()


@pytest.mark.slow  # two `dari` processes
def test_the_commands(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    env = {**os.environ, "DARI_SECRET_KEY": TEST_SECRET}

    def dari(var: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server.cli", *args],
            capture_output=True,
            text=True,
            env={**env, "DARI_VAR_DIR": str(var), "DARI_DATABASE_URL": ""},
            cwd=ROOT,
            timeout=120,
        )

    assert dari(source, "migrate").returncode == 0
    key = dari(source, "backup", "--new-key").stdout.strip()
    env["DARI_BACKUP_KEY"] = key
    made = dari(source, "backup", "--out", str(tmp_path / "out"))
    assert made.returncode == 0, made.stderr
    assert "encrypted" in made.stdout and "not encrypted" not in made.stdout
    folder = next((tmp_path / "out").iterdir())
    back = dari(target, "restore", str(folder))
    assert back.returncode == 0, back.stderr
    assert "audit log intact" in back.stdout
    again = dari(target, "restore", str(folder))
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        "error: the database is not empty: restore goes into a new deployment only"
    ]
