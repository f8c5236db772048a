"""The `dari` command: bad input says one clear line, exits 2 and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session, select

from server import migrate
from server.accounts.models import User
from server.audit.models import AuditEvent
from server.db import engine_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    var = tmp_path_factory.mktemp("cli")
    url = f"sqlite:///{var / 'cli.sqlite3'}"
    migrate.upgrade(url)
    return url, var


def dari(cli_db: tuple[str, Path], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    url, var = cli_db
    env = {**os.environ, "DARI_DATABASE_URL": url, "DARI_VAR_DIR": str(var)}
    env.pop("DARI_SECRET_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def _users(url: str) -> list[User]:
    with Session(engine_for(url)) as session:
        return list(session.exec(select(User)).all())


@pytest.mark.slow  # each `dari` run is a new Python process (~2 s)
def test_demo_seeds_once_and_prints_logins(cli_db: tuple[str, Path]) -> None:
    first = dari(cli_db, "demo")
    assert first.returncode == 0, first.stderr
    assert "demo data created" in first.stdout
    assert "gp.jeongseon@dari.example" in first.stdout
    count = len(_users(cli_db[0]))
    # 16 GPs and specialists, an administrator per organisation (7), 2 regional
    # authorities and 3 inactive authors of the equity demo's history
    assert count == 23 + 2 + 3
    second = dari(cli_db, "demo")
    assert second.returncode == 0
    assert "already present" in second.stdout
    assert len(_users(cli_db[0])) == count
    roles = {u.role for u in _users(cli_db[0])}
    assert roles == {"gp", "specialist", "admin", "region_authority"}
    from server.scheduling.models import RosterRule

    with Session(engine_for(cli_db[0])) as session:
        specialists_with_rules = set(session.exec(select(RosterRule.specialist_id)).all())
    assert len(specialists_with_rules) == 10  # every demo specialist has a roster


@pytest.mark.slow
def test_create_user_with_password_on_stdin(cli_db: tuple[str, Path]) -> None:
    dari(cli_db, "demo")
    result = dari(
        cli_db,
        "create-user",
        "--email",
        "new.gp@dari.example",
        "--name",
        "신규의사",
        "--role",
        "gp",
        "--org",
        "Wando Cheongsan Clinic",
        "--password-stdin",
        stdin="a-good-password-7\n",
    )
    assert result.returncode == 0, result.stderr
    assert any(u.email == "new.gp@dari.example" for u in _users(cli_db[0]))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "nurse", "--org", "1"], "a-good-password-7\n", "unknown role"),
        (
            ["--role", "gp", "--org", "No Such Clinic"],
            "a-good-password-7\n",
            "unknown organisation",
        ),
        (["--role", "gp", "--org", "1"], "short\n", "at least 10 characters"),
        (
            ["--role", "specialist", "--org", "5", "--specialty", "astrology"],
            "a-good-password-7\n",
            "unknown specialty",
        ),
        (["--role", "gp", "--org", "1", "--email-dup"], "a-good-password-7\n", "already exists"),
    ],
)
def test_create_user_bad_input_exits_2_and_writes_nothing(
    cli_db: tuple[str, Path], args: list[str], stdin: str, message: str
) -> None:
    dari(cli_db, "demo")
    email = "dup.test@dari.example"
    if "--email-dup" in args:
        args = [a for a in args if a != "--email-dup"]
        email = "gp.jeongseon@dari.example"
    users_before = len(_users(cli_db[0]))
    with Session(engine_for(cli_db[0])) as session:
        events_before = len(session.exec(select(AuditEvent)).all())
    result = dari(
        cli_db,
        "create-user",
        "--email",
        email,
        "--name",
        "이름",
        *args,
        "--password-stdin",
        stdin=stdin,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert len(_users(cli_db[0])) == users_before
    with Session(engine_for(cli_db[0])) as session:
        assert len(session.exec(select(AuditEvent)).all()) == events_before


def test_secret_key_is_generated_once_with_private_permissions(cli_db: tuple[str, Path]) -> None:
    from server.settings import Settings

    var = cli_db[1]
    key_file = var / "secret_key"
    settings = Settings(var_dir=var, secret_key="")
    first = settings.resolved_secret_key()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert Settings(var_dir=var, secret_key="").resolved_secret_key() == first
    assert len(first) >= 32


@pytest.mark.slow
def test_audit_verify_reports_intact_log(cli_db: tuple[str, Path]) -> None:
    dari(cli_db, "demo")
    result = dari(cli_db, "audit", "verify")
    assert result.returncode == 0
    assert "intact" in result.stdout


@pytest.mark.slow
def test_migrate_and_demo_work_in_a_var_dir_that_does_not_exist_yet(tmp_path: Path) -> None:
    var = tmp_path / "fresh-clone" / "var"  # as on a fresh clone: no var/ at all
    env = {**os.environ, "DARI_VAR_DIR": str(var)}
    env.pop("DARI_DATABASE_URL", None)
    env.pop("DARI_SECRET_KEY", None)
    for command in (["migrate"], ["demo"]):
        result = subprocess.run(
            [sys.executable, "-m", "server.cli", *command],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
    assert (var / "dari.sqlite3").exists()
