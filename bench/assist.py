"""Triage assist benchmark: how long a suggestion takes while the GP types.

    .venv/bin/python -m bench.assist [--runs 300]

On SQLite in a temporary directory, with the model trained from the shipped seed
questions, over the held-out questions (Korean and English) in turn. Measures, in one run:
- the suggestion itself (`service.suggest_for_text`: the analyser's words, the specialty
  model's top three with their words, the red-flag rules), against the analyser alone
  (the words of the same question: the floor any Korean-aware suggestion pays);
- the whole request (`POST /api/assist/suggest` through the app: login session, CSRF,
  consent check, the registration-number filter, the suggestion, its row and audit
  event), against `GET /healthz` through the same client (the request's own cost);
- the one-off costs: loading the analyser and training the model.
The target: a suggestion's p50 at most 50 ms on this machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from server import migrate
from server.accounts.models import Organisation, OrgKind, Region, Role, Specialty, User
from server.accounts.security import hash_password
from server.app import create_app
from server.assist import model as specialty_model
from server.assist import service, text
from server.assist.models import AssistConsent
from server.db import engine_for
from server.settings import Settings

PASSWORD = "bench-password-1"
CODES = {
    "cardiology": ("심장내과", "Cardiology"),
    "dermatology": ("피부과", "Dermatology"),
    "endocrinology": ("내분비내과", "Endocrinology"),
    "neurology": ("신경과", "Neurology"),
    "pediatrics": ("소아청소년과", "Pediatrics"),
    "psychiatry": ("정신건강의학과", "Psychiatry"),
}


def seed(session: Session) -> User:
    region = Region(code="r", name_ko="지역", name_en="Region")
    session.add(region)
    session.flush()
    clinic = Organisation(
        name_ko="보건지소", name_en="Clinic", kind=OrgKind.CLINIC, region_id=region.id or 0
    )
    session.add(clinic)
    session.add_all(Specialty(code=c, name_ko=ko, name_en=en) for c, (ko, en) in CODES.items())
    session.flush()
    session.add(AssistConsent(organisation_id=clinic.id or 0, enabled=True))
    gp = User(
        email="gp@bench.example",
        name="의사",
        password_hash=hash_password(PASSWORD),
        role=Role.GP,
        organisation_id=clinic.id or 0,
    )
    session.add(gp)
    session.commit()
    return gp


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="suggestions per measurement")
    args = parser.parse_args()
    questions = [e.text for e in specialty_model.read_examples(specialty_model.HELDOUT_PATH)]
    with tempfile.TemporaryDirectory() as directory:
        var = Path(directory)
        url = f"sqlite:///{var / 'bench.sqlite3'}"
        migrate.upgrade(url)
        settings = Settings(
            database_url=url,
            var_dir=var,
            secret_key="bench-secret",
            testing=True,
            assist_retrain_minutes=0,
            urgent_check_seconds=0,
        )
        engine = engine_for(url)
        with Session(engine, expire_on_commit=False) as session:
            gp = seed(session)

        started = time.perf_counter()
        text.words("분석기를 불러옵니다")
        analyser_load = (time.perf_counter() - started) * 1000
        with Session(engine) as session:
            started = time.perf_counter()
            service.current_model(session, settings)
            training = (time.perf_counter() - started) * 1000

        counter = iter(range(10**9))

        def next_question() -> str:
            return questions[next(counter) % len(questions)]

        with Session(engine) as session:
            words_only = timed(lambda: text.words(next_question()), args.runs)
            suggestion = timed(
                lambda: service.suggest_for_text(session, next_question(), settings), args.runs
            )

        app = create_app(settings)
        with TestClient(app) as client:
            csrf = client.get("/api/auth/csrf").json()["csrf_token"]
            login = client.post(
                "/api/auth/login",
                json={"email": gp.email, "password": PASSWORD},
                headers={"X-CSRF-Token": csrf},
            )
            client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            healthz = timed(lambda: client.get("/healthz"), args.runs)

            def post() -> None:
                response = client.post("/api/assist/suggest", json={"text": next_question()})
                assert response.status_code == 200, response.text

            api = timed(post, args.runs)
        engine.dispose()

    result = {
        "runs": args.runs,
        "questions": len(questions),
        "one_off_ms": {"analyser_load": round(analyser_load), "training": round(training)},
        "suggestion": summary(suggestion),
        "baseline_words_only": summary(words_only),
        "suggestion_over_words": round(
            statistics.median(suggestion) / statistics.median(words_only), 2
        ),
        "api_request": summary(api),
        "baseline_healthz": summary(healthz),
        "api_over_healthz": round(statistics.median(api) / statistics.median(healthz), 2),
        "target_p50_ms": 50,
        "target_met": statistics.median(suggestion) <= 50 and statistics.median(api) <= 50,
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
