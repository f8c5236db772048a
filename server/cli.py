"""The `dari` command: serve, migrate, create users, seed the demo, verify the audit log."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from server import migrate as migrations
from server.accounts import service as accounts
from server.db import engine_for
from server.errors import AppError
from server.settings import get_settings

app = typer.Typer(help="Dari remote consultation", no_args_is_help=True, add_completion=False)


def fail(message: str) -> typer.Exit:
    """One clear line on stderr, exit status 2."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _session() -> Session:
    return Session(engine_for(get_settings().resolved_database_url()), expire_on_commit=False)


@app.command()
def migrate() -> None:
    """Apply all database migrations."""
    migrations.upgrade(get_settings().resolved_database_url())
    typer.echo("database is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default DARI_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default DARI_PORT or 8000")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the web application (and the signaling service at /ws)."""
    import uvicorn

    from web import render

    try:
        render.require_compiled()
    except render.CatalogsNotCompiled as error:  # one line, not uvicorn's traceback
        typer.echo(f"dari: {error}", err=True)
        raise typer.Exit(1) from None
    from server.ops import logs, readiness
    from signaling.serving import uvicorn_options

    settings = get_settings()
    refusal = readiness.workers_refusal(workers, settings)
    if refusal:
        raise fail(refusal)
    uvicorn.run(
        "server.main:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        # Forwarded headers only from the configured proxies (none by default).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies),
        log_config=logs.logging_config(settings.log_level),
        access_log=False,
        **uvicorn_options(),
    )


@app.command()
def signaling(
    host: Annotated[str | None, typer.Option(help="default DARI_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default DARI_SIGNALING_PORT or 8001")] = None,
) -> None:
    """Run the signaling service alone (endpoints under /ws), e.g. one per node with Redis."""
    import uvicorn

    from server.calls.gatekeeper import build_signaling
    from server.ops import logs, metrics, readiness
    from server.ops.middleware import ObservabilityMiddleware
    from signaling.app import standalone_app
    from signaling.serving import uvicorn_options

    settings = get_settings()
    engine = engine_for(settings.resolved_database_url())
    service = build_signaling(settings, engine, settings.resolved_secret_key())
    metrics.LIVE.attach(service)
    uvicorn.run(
        ObservabilityMiddleware(
            standalone_app(service, readiness.standalone_routes(engine, settings))
        ),
        host=host or settings.host,
        port=port or settings.signaling_port,
        # Forwarded headers only from the configured proxies (none by default).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies),
        log_config=logs.logging_config(settings.log_level),
        access_log=False,
        **uvicorn_options(),
    )


@app.command("create-user")
def create_user(
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="gp, specialist, admin or region_authority")],
    org: Annotated[str, typer.Option(help="organisation id or exact name")],
    specialty: Annotated[str | None, typer.Option(help="for specialists: code, name or id")] = None,
    password_stdin: Annotated[bool, typer.Option(help="read the password from stdin")] = False,
) -> None:
    """Create a user; the password is prompted for, or read from standard input."""
    with _session() as session:
        organisation = accounts.find_organisation(session, org)
        if organisation is None:
            raise fail(f"unknown organisation {org!r}")
        specialty_id = None
        if specialty is not None:
            found = accounts.find_specialty(session, specialty)
            if found is None:
                raise fail(f"unknown specialty {specialty!r}")
            specialty_id = found.id
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            if not sys.stdin.isatty():
                raise fail("no terminal to ask for a password; use --password-stdin")
            password = getpass.getpass("password: ")
            if getpass.getpass("again: ") != password:
                raise fail("the two passwords differ")
        try:
            user = accounts.create_user(
                session,
                email=email,
                name=name,
                role=role,
                organisation_id=organisation.id or 0,
                password=password,
                specialty_id=specialty_id,
            )
            session.commit()
        except AppError as refusal:
            session.rollback()
            raise fail(refusal.message) from None
    typer.echo(f"created user {user.id}: {user.email} ({user.role})")


@app.command()
def demo() -> None:
    """Seed the demo data (once; running it again changes nothing)."""
    from server.demo import DEMO_PASSWORD, DEMO_TOTP_SECRET, demo_logins, seed_demo

    with _session() as session:
        created = seed_demo(session)
        session.commit()
    typer.echo("demo data created" if created else "demo data already present")
    typer.echo(f"demo logins (password for all: {DEMO_PASSWORD}):")
    typer.echo(
        f"  specialists and administrators also need a code from an authenticator app "
        f"holding the demo key {DEMO_TOTP_SECRET}"
    )
    for role, email, organisation in demo_logins():
        typer.echo(f"  {role:<10} {email:<32} {organisation}")


@app.command("backup")
def backup_command(
    out: Annotated[Path, typer.Option(help="folder to write the backup into")] = Path("backups"),
    new_key: Annotated[bool, typer.Option(help="print a new encryption key and stop")] = False,
) -> None:
    """Back up the database and attachments (encrypted when DARI_BACKUP_KEY is set)."""
    from server.ops import backup

    if new_key:
        typer.echo(backup.new_key())
        return
    try:
        written = backup.backup(get_settings(), out, os.environ.get("DARI_BACKUP_KEY"))
    except backup.BackupError as error:
        raise fail(str(error)) from None
    files = len(written.manifest["files"])
    state = "encrypted" if written.manifest["encrypted"] else "not encrypted"
    typer.echo(f"backup written to {written.path} ({files} files, {state})")


@app.command("restore")
def restore_command(
    folder: Annotated[Path, typer.Argument(help="a folder written by `dari backup`")],
) -> None:
    """Restore a backup into an empty deployment, then check hashes, counts and the audit log."""
    from server.ops import backup

    try:
        restored = backup.restore(get_settings(), folder, os.environ.get("DARI_BACKUP_KEY"))
    except backup.BackupError as error:
        raise fail(str(error)) from None
    rows = sum(restored.row_counts.values())
    typer.echo(
        f"restored {rows} rows in {len(restored.row_counts)} tables, "
        f"{restored.attachments} attachment files; every hash and count checked"
    )
    if restored.audit_problems:
        typer.echo(
            f"audit log: {restored.audit_problems} problem(s); run `dari audit verify`", err=True
        )
        raise typer.Exit(code=1)
    typer.echo("audit log intact")


audit_app = typer.Typer(help="The audit log", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exit 1 and list the problems if the log was tampered with."""
    from server.audit import service as audit

    with _session() as session:
        problems = audit.verify(session)
    if problems:
        for problem in problems:
            typer.echo(f"event {problem.seq}: {problem.message}", err=True)
        raise typer.Exit(code=1)
    typer.echo("audit log intact")


@audit_app.command("adopt-legacy")
def audit_adopt_legacy() -> None:
    """Once, after upgrading from the first release (unkeyed chain): check its events and
    vouch for them with one keyed event, so `dari audit verify` accepts them."""
    from server.audit import service as audit

    with _session() as session:
        try:
            adopted = audit.adopt_legacy(session)
        except ValueError as error:
            raise fail(f"nothing adopted: {error}") from None
        session.commit()
    typer.echo(f"{adopted} first-release event(s) adopted" if adopted else "nothing to adopt")


consults_app = typer.Typer(help="Consults", no_args_is_help=True)
app.add_typer(consults_app, name="consults")


@consults_app.command("escalate-overdue")
def consults_escalate_overdue() -> None:
    """Escalate consults past their response target (run every minute from cron)."""
    from server.clock import utcnow
    from server.consults import clocks

    with _session() as session:
        escalated = clocks.escalate_overdue(session, utcnow(), get_settings())
        session.commit()
    typer.echo(f"escalated {len(escalated)} consult(s)")


assist_app = typer.Typer(help="The triage assist (docs/assist.md)", no_args_is_help=True)
app.add_typer(assist_app, name="assist")


@assist_app.command("train")
def assist_train() -> None:
    """Train the specialty model now from this deployment's consults (kept in var/assist/)."""
    from server.assist import service as assist

    with _session() as session:
        trained = assist.train_and_store(session, get_settings())
    typer.echo(
        f"trained model {trained.version} ({trained.source}): {trained.n_seed} seed + "
        f"{trained.n_real} real questions, {len(trained.labels)} specialties"
    )


@assist_app.command("evaluate")
def assist_evaluate(
    seed_only: Annotated[
        bool, typer.Option(help="train on the shipped seed questions only, not the database")
    ] = False,
) -> None:
    """Accuracy at 1 and 3 per specialty and the urgency rules' sensitivity, on the
    held-out set shipped in server/assist/data/heldout.csv."""
    from server.assist import evaluate
    from server.assist import model as specialty_model
    from server.assist import service as assist

    if seed_only:
        seed = specialty_model.read_examples(specialty_model.SEED_PATH)
        trained = specialty_model.train(seed, n_seed=len(seed), n_real=0, source="seed")
    else:
        with _session() as session:
            trained = assist.build_model(session, get_settings())
    held_out = specialty_model.read_examples(specialty_model.HELDOUT_PATH)
    for line in evaluate.report(evaluate.evaluate(trained, held_out), trained):
        typer.echo(line)


if __name__ == "__main__":
    app()
