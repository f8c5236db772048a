"""The analyser's words, the specialty model, its store in var/, the retrain, the shipped
data sets and `dari assist evaluate`."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from server.accounts.models import OrgKind, Role
from server.assist import evaluate, jobs, service
from server.assist import model as specialty_model
from server.assist.text import words
from server.consults.models import ConsultStatus
from tests.assist.helpers import consent, seed_specialties
from tests.conftest import make_settings
from tests.factories import make_consult_row, make_organisation, make_user

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seed_model() -> specialty_model.TrainedModel:
    seed = specialty_model.read_examples(specialty_model.SEED_PATH)
    return specialty_model.train(seed, n_seed=len(seed), n_real=0, source="seed")


def test_words_korean_and_english() -> None:
    assert words("어제부터 가슴이 답답하고 식은땀이 납니다") == [
        "어제",
        "가슴",
        "답답",
        "식은땀",
        "나다",
    ]
    assert words("Itchy rashes on both forearms") == ["itchy", "rash", "forearm"]
    mixed = words("BP 150/90, 두통 심함, headache since Monday")
    assert {"bp", "두통", "headache"} <= set(mixed)
    assert "자문" not in words("자문 부탁드립니다")  # the request's form, not its content


def test_prediction_explains_with_words_of_the_text(
    seed_model: specialty_model.TrainedModel,
) -> None:
    question = "갑상선 결절이 초음파에서 보이고 TSH가 낮습니다"
    candidates = specialty_model.predict(seed_model, question)
    assert candidates[0].label == "endocrinology"
    assert len(candidates) == 3
    assert candidates[0].confidence > candidates[1].confidence >= candidates[2].confidence
    assert candidates[0].words and set(candidates[0].words) <= set(words(question))
    only = specialty_model.predict(seed_model, question, allowed={"neurology", "psychiatry"})
    assert {c.label for c in only} == {"neurology", "psychiatry"}
    assert specialty_model.predict(seed_model, "") == []


def test_store_keeps_the_model_in_var_and_refuses_stale_files(
    tmp_path: Path, seed_model: specialty_model.TrainedModel
) -> None:
    store = specialty_model.ModelStore(tmp_path)
    assert store.load() is None
    store.save(seed_model)
    assert store.path.parent == tmp_path / "assist"
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    fresh = specialty_model.ModelStore(tmp_path)
    loaded = fresh.load()
    assert loaded is not None and loaded.version == seed_model.version
    # A model written by another format or scikit-learn version is not used.
    stale = pickle.loads(pickle.dumps(seed_model))
    stale.sklearn_version = "0.0"
    with store.path.open("wb") as handle:
        pickle.dump(stale, handle)
    os.utime(store.path, (1, 1))
    assert specialty_model.ModelStore(tmp_path).load() is None


def test_shipped_sets_are_disjoint_and_cover_both_languages() -> None:
    seed = specialty_model.read_examples(specialty_model.SEED_PATH)
    held_out = specialty_model.read_examples(specialty_model.HELDOUT_PATH)
    assert not {e.text for e in seed} & {e.text for e in held_out}
    assert {e.lang for e in held_out} == {"ko", "en"} == {e.lang for e in seed}
    assert {e.label for e in held_out} == {e.label for e in seed}
    assert sum(1 for e in held_out if e.urgent) >= 20
    assert all(e.urgent is not None for e in held_out)


def test_evaluation_on_the_held_out_set(seed_model: specialty_model.TrainedModel) -> None:
    held_out = specialty_model.read_examples(specialty_model.HELDOUT_PATH)
    result = evaluate.evaluate(seed_model, held_out)
    overall = result.overall
    assert overall.total == len(held_out)
    # Floors well under the measured figures (docs/benchmarks.md): a regression shows.
    assert overall.at_one / overall.total >= 0.65
    assert overall.at_three / overall.total >= 0.85
    assert result.sensitivity >= 0.8
    assert result.false_alarm_rate <= 0.1
    lines = evaluate.report(result, seed_model)
    assert any(line.startswith("cardiology") for line in lines)
    assert any("sensitivity" in line for line in lines)


def test_retrain_when_enough_consults_completed(
    db: Session, database_url: str, tmp_path: Path
) -> None:
    specialties = seed_specialties(db)
    settings = make_settings(database_url, tmp_path, assist_retrain_min_new=2)
    with Session(db.get_bind()) as session:
        first = service.retrain_if_due(session, settings)  # no model yet: trains
        assert first is not None and first.source == "seed"
        assert service.retrain_if_due(session, settings) is None  # nothing new
    clinic = make_organisation(db)
    consent(db, clinic)
    gp = make_user(db, Role.GP, organisation=clinic)
    specialist = make_user(
        db,
        Role.SPECIALIST,
        organisation=make_organisation(db, kind=OrgKind.HOSPITAL),
        specialty=specialties["psychiatry"],
    )
    for question in ("불면과 우울감, 약 조정 문의", "공황 발작이 잦습니다"):
        make_consult_row(
            db,
            gp,
            specialties["psychiatry"].id or 0,
            specialist=specialist,
            status=ConsultStatus.COMPLETED,
            clinical_question=question,
        )
    # Completed consults of an organisation without consent never train the model.
    other = make_user(db, Role.GP)
    make_consult_row(
        db,
        other,
        specialties["psychiatry"].id or 0,
        specialist=specialist,
        status=ConsultStatus.COMPLETED,
        clinical_question="private question of another clinic",
    )
    with Session(db.get_bind()) as session:
        second = service.retrain_if_due(session, settings)
        assert second is not None
        assert second.n_real == first.n_real + 2
        texts = {e.text for e in service.real_examples(session)}
    assert "private question of another clinic" not in texts
    assert specialty_model.store_for(tmp_path).load() is not None


def test_deployment_model_once_enough_real_consults(
    db: Session, database_url: str, tmp_path: Path
) -> None:
    specialties = seed_specialties(db)
    clinic = make_organisation(db)
    consent(db, clinic)
    gp = make_user(db, Role.GP, organisation=clinic)
    for code, question in (("neurology", "손 떨림"), ("dermatology", "가려운 발진")):
        make_consult_row(
            db,
            gp,
            specialties[code].id or 0,
            status=ConsultStatus.COMPLETED,
            clinical_question=question,
        )
    with Session(db.get_bind()) as session:
        real = len(service.real_examples(session))
        cold = service.build_model(session, make_settings(database_url, tmp_path))
        settings = make_settings(database_url, tmp_path, assist_min_real_consults=real)
        trained = service.build_model(session, settings)
    assert cold.source == "seed" and cold.n_seed > 0  # the default threshold is not reached
    assert trained.source == "deployment" and trained.n_seed == 0 and trained.n_real == real


@pytest.mark.slow  # a new Python process that loads the analyser and trains (~15 s)
def test_dari_assist_evaluate_prints_the_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "assist", "evaluate", "--seed-only"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "acc@1" in result.stdout and "acc@3" in result.stdout
    assert "urgency rules: sensitivity" in result.stdout
    for code in ("cardiology", "dermatology", "psychiatry"):
        assert any(line.startswith(code) for line in result.stdout.splitlines())


def test_warm_up_and_scheduled_retrain_check(
    db: Session, database_url: str, tmp_path: Path
) -> None:
    seed_specialties(db)
    consent(db, make_organisation(db))
    settings = make_settings(database_url, tmp_path)
    engine = db.get_bind()
    assert isinstance(engine, Engine)
    assert jobs.warm_up_once(engine, settings) is True
    assert specialty_model.store_for(tmp_path).path.is_file()
    # The stored model is current: the scheduled check does not retrain.
    assert jobs.retrain_once(engine, settings) is False
