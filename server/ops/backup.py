"""`dari backup` and `dari restore`: a consistent copy of the database and the attachment
store, with a manifest of hashes and row counts, optionally encrypted (Fernet).

A backup is a directory:

    manifest.json            what, when, from which schema; sha256 and size of every file,
                             the row count of every table (no patient data: ids and numbers)
    database.sqlite3         SQLite: the online backup API (a consistent copy while serving)
    database.pgdump          PostgreSQL: pg_dump --format=custom (one snapshot)
    attachments/…            the content-addressed store, as it is on disk

With a key (DARI_BACKUP_KEY, a Fernet key: `dari backup --new-key` prints one) every file
but the manifest is encrypted and gets `.enc`; the manifest's hashes are those of the
plain files, so a restore checks what it brings back. Fernet works on whole files in
memory: fine for attachments (20 MB at most) and databases of a few GB.

A restore goes into an empty deployment only (no table in the database, no file in the
attachment store), then checks every hash, every row count and the audit chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine.url import make_url
from sqlmodel import Session

from server.audit import service as audit
from server.db import engine_for
from server.ops.readiness import database_heads
from server.settings import Settings

FORMAT = 1
MANIFEST = "manifest.json"
ENCRYPTED_SUFFIX = ".enc"
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore that must stop, with one line saying why."""


def new_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _fernet(key: str | None) -> Any:
    if not key:
        return None
    from cryptography.fernet import Fernet

    try:
        return Fernet(key.encode())
    except ValueError:
        raise BackupError("DARI_BACKUP_KEY is not a Fernet key (dari backup --new-key)") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        # Spooled uploads in flight are not part of the store yet.
        if path.is_file() and not path.name.startswith("upload-"):
            yield path


def _pg_counts(connection: Connection) -> dict[str, int]:
    """Rows per table of the public schema (alembic_version included), by name."""
    names = inspect(connection).get_table_names()
    return {
        name: int(connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one())
        for name in sorted(names)
    }


def sqlite_file_counts(path: Path) -> dict[str, int]:
    """Rows per table of a SQLite file, read-only (the file is not touched)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            name: int(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
            for name in sorted(names)
        }
    finally:
        connection.close()


def _libpq_url(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it (no +driver)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def _major(version_text: str) -> int:
    found = re.search(r"(\d+)(?:\.\d+)?", version_text)
    if found is None:
        raise BackupError(f"cannot read a version from {version_text!r}")
    return int(found.group(1))


def _check_pg_tools(engine: Engine, tool: str) -> None:
    """pg_dump refuses a newer server; say so in one line before starting."""
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} not found: install the PostgreSQL client tools")
    client = _major(
        subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout
    )
    with engine.connect() as connection:
        server = int(connection.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    if client < server:
        raise BackupError(
            f"{tool} {client} is older than the server ({server}); use version {server} or newer"
        )


def _pg_dump(engine: Engine, url: str, plain: Path) -> dict[str, int]:
    """pg_dump from an exported snapshot, counting the rows in that same snapshot: the
    manifest describes exactly what the dump holds, however busy the server is."""
    with engine.connect() as connection:
        connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        counts = _pg_counts(connection)
        done = subprocess.run(
            [
                "pg_dump",
                "--format=custom",
                "--no-owner",
                f"--snapshot={snapshot}",
                "--file",
                str(plain),
                _libpq_url(url),
            ],
            capture_output=True,
            text=True,
        )
        connection.rollback()
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {' '.join(done.stderr.strip().splitlines()[-1:])}")
    return counts


@dataclass
class Written:
    path: Path
    manifest: dict[str, Any]


def _write(source: Path, target: Path, fernet: Any) -> dict[str, Any]:
    """Copy (or encrypt) one file into the backup; its entry for the manifest."""
    entry = {"sha256": sha256_of(source), "size": source.stat().st_size}
    target.parent.mkdir(parents=True, exist_ok=True)
    if fernet is None:
        shutil.copyfile(source, target)
    else:
        target = target.with_name(target.name + ENCRYPTED_SUFFIX)
        target.write_bytes(fernet.encrypt(source.read_bytes()))
    os.chmod(target, 0o600)
    return entry


def backup(settings: Settings, out_dir: Path, key: str | None = None) -> Written:
    """Write a new backup directory under `out_dir`; returns it and its manifest."""
    fernet = _fernet(key)
    url = settings.resolved_database_url()
    engine = engine_for(url)
    kind = engine.dialect.name
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out_dir / f"dari-backup-{stamp}"
    if target.exists():
        raise BackupError(f"{target} exists already")
    target.mkdir(parents=True, mode=0o700)
    files: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        if kind == "sqlite":
            plain = Path(scratch) / "database.sqlite3"
            source = sqlite3.connect(make_url(url).database or "")
            copy = sqlite3.connect(plain)
            try:
                source.backup(copy)  # the online backup API: consistent while others write
            finally:
                copy.close()
                source.close()
            name = "database.sqlite3"
            counts = sqlite_file_counts(plain)
        elif kind == "postgresql":
            _check_pg_tools(engine, "pg_dump")
            plain = Path(scratch) / "database.pgdump"
            name = "database.pgdump"
            counts = _pg_dump(engine, url, plain)
        else:
            raise BackupError(f"no backup for {kind} databases")
        files[name] = _write(plain, target / name, fernet)
    store = settings.resolved_attachments_dir()
    for path in _files(store):
        relative = f"attachments/{path.relative_to(store).as_posix()}"
        files[relative] = _write(path, target / relative, fernet)
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {"kind": kind, "file": name, "revisions": sorted(database_heads(engine) or [])},
        "row_counts": counts,
        "encrypted": fernet is not None,
        "files": files,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return Written(target, manifest)


def _read(backup_dir: Path, name: str, fernet: Any, entry: dict[str, Any]) -> bytes:
    plain_path = backup_dir / name
    encrypted_path = plain_path.with_name(plain_path.name + ENCRYPTED_SUFFIX)
    if fernet is not None:
        if not encrypted_path.exists():
            raise BackupError(f"{name}: missing from the backup")
        data: bytes = fernet.decrypt(encrypted_path.read_bytes())
    else:
        if not plain_path.exists():
            raise BackupError(
                f"{name}: missing (an encrypted backup needs DARI_BACKUP_KEY)"
                if encrypted_path.exists()
                else f"{name}: missing from the backup"
            )
        data = plain_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise BackupError(f"{name}: hash differs from the manifest")
    return data


def _database_is_empty(engine: Engine) -> bool:
    return not inspect(engine).get_table_names()


@dataclass
class Restored:
    row_counts: dict[str, int]
    attachments: int
    audit_problems: int


def restore(settings: Settings, backup_dir: Path, key: str | None = None) -> Restored:
    """Bring a backup back into an empty deployment, then check everything."""
    from cryptography.fernet import InvalidToken

    manifest_path = backup_dir / MANIFEST
    if not manifest_path.exists():
        raise BackupError(f"{backup_dir} has no {MANIFEST}")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    if manifest["encrypted"] and not key:
        raise BackupError("this backup is encrypted: set DARI_BACKUP_KEY")
    fernet = _fernet(key) if manifest["encrypted"] else None
    url = settings.resolved_database_url()
    engine = engine_for(url)
    kind = engine.dialect.name
    if kind != manifest["database"]["kind"]:
        raise BackupError(f"a {manifest['database']['kind']} backup cannot go into {kind}")
    store = settings.resolved_attachments_dir()
    if not _database_is_empty(engine):
        raise BackupError("the database is not empty: restore goes into a new deployment only")
    if any(_files(store)):
        raise BackupError(f"the attachment store {store} is not empty")
    files: dict[str, dict[str, Any]] = manifest["files"]
    name = manifest["database"]["file"]
    try:
        # Every file checked against the manifest before anything is written.
        for relative, entry in files.items():
            if relative != name:
                _read(backup_dir, relative, fernet, entry)
        data = _read(backup_dir, name, fernet, files[name])
    except InvalidToken:
        raise BackupError("DARI_BACKUP_KEY does not open this backup") from None
    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / name
        plain.write_bytes(data)
        del data
        if kind == "sqlite":
            engine.dispose()
            source = sqlite3.connect(plain)
            target = sqlite3.connect(make_url(url).database or "")
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
            engine.dispose()
        else:
            _check_pg_tools(engine, "pg_restore")
            done = subprocess.run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--exit-on-error",
                    "--dbname",
                    _libpq_url(url),
                    str(plain),
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise BackupError(
                    f"pg_restore failed: {' '.join(done.stderr.strip().splitlines()[-1:])}"
                )
    restored = 0
    for relative, entry in files.items():
        if not relative.startswith("attachments/"):
            continue
        target_path = store / relative.removeprefix("attachments/")
        if ".." in Path(relative).parts:
            raise BackupError(f"{relative}: not a path inside the store")
        target_path.parent.mkdir(parents=True, exist_ok=True)
        target_path.write_bytes(_read(backup_dir, relative, fernet, entry))
        os.chmod(target_path, 0o600)
        restored += 1
    if kind == "sqlite":
        counts = sqlite_file_counts(Path(make_url(url).database or ""))
    else:
        with engine.connect() as connection:
            counts = _pg_counts(connection)
    if counts != manifest["row_counts"]:
        differ = sorted(
            t
            for t in set(counts) | set(manifest["row_counts"])
            if counts.get(t) != manifest["row_counts"].get(t)
        )
        raise BackupError(f"row counts differ after restore: {', '.join(differ)}")
    for relative, entry in files.items():
        if relative.startswith("attachments/"):
            if sha256_of(store / relative.removeprefix("attachments/")) != entry["sha256"]:
                raise BackupError(f"{relative}: hash differs after restore")
    # The chain is checked with this deployment's audit key (never held by the database)
    # and against its checkpoints outside the database (docs/security.md).
    audit.configure(
        url,
        settings.resolved_audit_key(),
        settings.resolved_audit_checkpoints(),
        settings.audit_syslog,
    )
    with Session(engine) as session:
        problems = audit.verify(session)
    return Restored(counts, restored, len(problems))
