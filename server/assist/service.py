"""The triage assist: consent, specialty and urgency suggestions, the GP's choice, similar
past consults, and the figures the administrator sees. It only suggests; the people decide.

Nothing here reaches the network: the analyser's model is installed with its package, the
specialty model is trained here from this deployment's data and kept in var/assist/.
The question's text is never stored with a suggestion and never logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, col, func, or_, select

from server.accounts.models import Role, Specialty, User
from server.assist import model as specialty_model
from server.assist import rules
from server.assist.errors import AssistOff, TextTooLong
from server.assist.models import AssistConsent, AssistSuggestion
from server.assist.text import words
from server.audit import service as audit
from server.clock import utcnow
from server.consults.access import Viewing, access_of, sees_full_record
from server.consults.lifecycle import CLOSED
from server.consults.models import (
    ConsultMessage,
    ConsultReport,
    ConsultRequest,
    ConsultStatus,
    Urgency,
)
from server.consults.privacy import refuse_registration_numbers
from server.errors import Forbidden
from server.settings import Settings

if TYPE_CHECKING:
    from scipy import sparse

log = logging.getLogger("dari.assist")

MAX_TEXT = 8000
MIN_WORDS = 2  # fewer words than this: no specialty guess yet
SIMILAR_COUNT = 5
SIMILAR_CANDIDATES = 2000  # the most recent closed consults compared, at most
SUMMARY_CHARS = 240


# --- consent -------------------------------------------------------------------------


def is_enabled(session: Session, organisation_id: int) -> bool:
    """Whether the organisation's administrator has switched the assist on."""
    consent = session.get(AssistConsent, organisation_id)
    return consent is not None and consent.enabled


def consenting_organisations(session: Session) -> set[int]:
    rows = session.exec(
        select(AssistConsent.organisation_id).where(col(AssistConsent.enabled).is_(True))
    ).all()
    return set(rows)


def set_enabled(session: Session, admin: User, enabled: bool, *, ip: str = "") -> AssistConsent:
    """Switch the assist on or off for the administrator's own organisation (audited)."""
    if admin.role != Role.ADMIN:
        raise Forbidden("only an administrator may switch the assist")
    consent = session.get(AssistConsent, admin.organisation_id)
    if consent is None:
        consent = AssistConsent(organisation_id=admin.organisation_id)
    consent.enabled = enabled
    consent.changed_at = utcnow()
    consent.changed_by_id = admin.id
    session.add(consent)
    audit.record(
        session,
        "assist.consent_on" if enabled else "assist.consent_off",
        actor_id=admin.id,
        ip=ip,
        object_type="organisation",
        object_id=admin.organisation_id,
        organisation_id=admin.organisation_id,
    )
    session.flush()
    return consent


# --- the model -----------------------------------------------------------------------


def real_examples(session: Session) -> list[specialty_model.Example]:
    """Completed consults of consenting organisations, labelled with the specialty the
    consult finally had. Declined and cancelled ones are left out: a declined request may
    have gone to the wrong specialty, which is what the label must not teach."""
    organisations = consenting_organisations(session)
    if not organisations:
        return []
    rows = session.exec(
        select(ConsultRequest.clinical_question, Specialty.code)
        .join(Specialty, col(Specialty.id) == col(ConsultRequest.specialty_id))
        .where(
            ConsultRequest.status == ConsultStatus.COMPLETED,
            col(ConsultRequest.organisation_id).in_(organisations),
        )
        .order_by(col(ConsultRequest.id))
    ).all()
    return [specialty_model.Example(text=question, label=code) for question, code in rows]


def count_real_examples(session: Session) -> int:
    organisations = consenting_organisations(session)
    if not organisations:
        return 0
    return session.exec(
        select(func.count())
        .select_from(ConsultRequest)
        .where(
            ConsultRequest.status == ConsultStatus.COMPLETED,
            col(ConsultRequest.organisation_id).in_(organisations),
        )
    ).one()


def build_model(session: Session, settings: Settings) -> specialty_model.TrainedModel:
    """Train from the deployment's consults; below the cold-start threshold (or with fewer
    than two specialties of its own) from the seed questions as well."""
    real = real_examples(session)
    if len(real) >= settings.assist_min_real_consults and len({e.label for e in real}) >= 2:
        return specialty_model.train(real, n_seed=0, n_real=len(real), source="deployment")
    seed = specialty_model.read_examples(specialty_model.SEED_PATH)
    return specialty_model.train([*seed, *real], n_seed=len(seed), n_real=len(real), source="seed")


_training = threading.Lock()


def train_and_store(session: Session, settings: Settings) -> specialty_model.TrainedModel:
    """Train now and keep the model under var/assist/ (`dari assist train`, the retrain)."""
    with _training:
        trained = build_model(session, settings)
        specialty_model.store_for(settings.var_dir).save(trained)
    log.info(
        "assist model trained: version %s, %d seed + %d real questions",
        trained.version,
        trained.n_seed,
        trained.n_real,
    )
    return trained


def current_model(session: Session, settings: Settings) -> specialty_model.TrainedModel:
    """The stored model; the first use in a fresh deployment trains one (a few seconds)."""
    store = specialty_model.store_for(settings.var_dir)
    loaded = store.load()
    if loaded is not None:
        return loaded
    with _training:
        loaded = store.load()  # another thread may have trained it meanwhile
        if loaded is not None:
            return loaded
        trained = build_model(session, settings)
        store.save(trained)
        return trained


def warm_up(session: Session, settings: Settings) -> bool:
    """Load the analyser and the model (training one if needed) before the first GP types,
    when some organisation has switched the assist on. True when it did."""
    if not consenting_organisations(session):
        return False
    current_model(session, settings)
    words("준비")
    return True


def retrain_if_due(session: Session, settings: Settings) -> specialty_model.TrainedModel | None:
    """Retrain when `assist_retrain_min_new` consults have completed since the last training
    (the app's background task calls this every `assist_retrain_minutes`)."""
    store = specialty_model.store_for(settings.var_dir)
    loaded = store.load()
    if loaded is not None:
        new = count_real_examples(session) - loaded.n_real
        if new < settings.assist_retrain_min_new:
            return None
    return train_and_store(session, settings)


# --- suggestions ---------------------------------------------------------------------


@dataclass
class SpecialtyOption:
    specialty: Specialty
    confidence: float
    words: tuple[str, ...]


@dataclass
class Suggestion:
    public_id: str
    specialties: list[SpecialtyOption]
    urgency: rules.UrgencySuggestion
    cold_start: bool
    real_consults: int
    needed: int


def _allowed_specialties(session: Session) -> dict[str, Specialty]:
    return {s.code: s for s in session.exec(select(Specialty)).all()}


def suggest_for_text(
    session: Session, text: str, settings: Settings, chosen: Urgency = Urgency.ROUTINE
) -> tuple[list[SpecialtyOption], rules.UrgencySuggestion, specialty_model.TrainedModel]:
    """The computation alone (no consent check, nothing stored): evaluation and bench."""
    trained = current_model(session, settings)
    allowed = _allowed_specialties(session)
    options: list[SpecialtyOption] = []
    if len(text.split()) >= MIN_WORDS or len(text) >= 8:
        for candidate in specialty_model.predict(trained, text, allowed=allowed):
            options.append(
                SpecialtyOption(allowed[candidate.label], candidate.confidence, candidate.words)
            )
    return options, rules.suggest_urgency(text, chosen), trained


def suggest(
    session: Session,
    user: User,
    text: str,
    settings: Settings,
    *,
    chosen: Urgency = Urgency.ROUTINE,
    ip: str = "",
) -> Suggestion:
    """Specialty (top three) and urgency for the GP's question, stored and audited as shown."""
    if user.role != Role.GP:
        raise Forbidden("only GPs get triage suggestions")
    if not is_enabled(session, user.organisation_id):
        raise AssistOff()
    if len(text) > MAX_TEXT:
        raise TextTooLong(MAX_TEXT)
    # The same filter as the request itself: a registration number is refused, not analysed.
    refuse_registration_numbers({"clinical_question": text})
    options, urgency, trained = suggest_for_text(session, text, settings, chosen)
    shown_specialties = " ".join(f"{o.specialty.code}:{o.confidence:.2f}" for o in options)
    shown_rules = " ".join(flag.rule.id for flag in urgency.flags)
    real = trained.n_real
    cold = trained.source == "seed"
    needed = settings.assist_min_real_consults
    if not options and not urgency.flags:
        return Suggestion("", [], urgency, cold, real, needed)
    # As the GP types, the same suggestion comes back many times: it is one suggestion
    # shown, stored once (a changed order, specialty or rule is a new one).
    last = session.exec(
        select(AssistSuggestion)
        .where(AssistSuggestion.user_id == user.id, col(AssistSuggestion.consult_id).is_(None))
        .order_by(col(AssistSuggestion.id).desc())
        .limit(1)
    ).first()
    codes = [o.specialty.code for o in options]
    if (
        last is not None
        and [part.split(":")[0] for part in last.specialties.split()] == codes
        and last.rules == shown_rules
        and last.model_version == trained.version
    ):
        return Suggestion(last.public_id, options, urgency, cold, real, needed)
    row = AssistSuggestion(
        user_id=user.id or 0,
        organisation_id=user.organisation_id,
        model_version=trained.version,
        model_source=trained.source,
        specialties=shown_specialties,
        urgent=bool(urgency.flags),
        rules=shown_rules,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "assist.suggested",
        actor_id=user.id,
        ip=ip,
        object_type="assist_suggestion",
        object_id=row.public_id,
        organisation_id=user.organisation_id,
        detail={"specialties": codes, "rules": shown_rules.split(), "model": trained.version},
    )
    return Suggestion(row.public_id, options, urgency, cold, real, needed)


def record_choice(
    session: Session, user: User, suggestion_id: str, consult: ConsultRequest, *, ip: str = ""
) -> AssistSuggestion | None:
    """Link the last suggestion the GP saw to the request they sent, with what they chose.
    An unknown, someone else's or already used suggestion id is ignored (nothing recorded)."""
    if not suggestion_id:
        return None
    row = session.exec(
        select(AssistSuggestion).where(
            AssistSuggestion.public_id == suggestion_id,
            AssistSuggestion.user_id == user.id,
            col(AssistSuggestion.consult_id).is_(None),
        )
    ).first()
    if row is None:
        return None
    chosen = session.get(Specialty, consult.specialty_id)
    codes = [part.split(":")[0] for part in row.specialties.split()]
    row.consult_id = consult.id
    row.chosen_at = utcnow()
    row.chosen_specialty_id = consult.specialty_id
    row.chosen_urgency = consult.urgency.value
    # None when no specialty was shown (only a red flag): nothing to take or leave.
    row.took_specialty = (chosen is not None and codes[0] == chosen.code) if codes else None
    row.in_top_three = (chosen is not None and chosen.code in codes) if codes else None
    row.took_urgency = (consult.urgency == Urgency.URGENT) if row.urgent else None
    session.add(row)
    audit.record(
        session,
        "assist.choice",
        actor_id=user.id,
        ip=ip,
        object_type="consult",
        object_id=consult.public_id,
        organisation_id=user.organisation_id,
        detail={
            "suggestion": row.public_id,
            "chosen_specialty": chosen.code if chosen else None,
            "chosen_urgency": consult.urgency.value,
            "took_specialty": row.took_specialty,
            "in_top_three": row.in_top_three,
            "took_urgency": row.took_urgency,
        },
    )
    return row


# --- similar consults ----------------------------------------------------------------


@dataclass
class SimilarConsult:
    consult: ConsultRequest
    similarity: float
    summary: str
    outcome: str


def _vectors(trained: specialty_model.TrainedModel, texts: Sequence[str]) -> sparse.csr_matrix:
    import numpy as np
    from scipy import sparse

    joined = [" ".join(words(t)) for t in texts]
    matrix = sparse.hstack(
        [trained.vectorizer.transform(joined), trained.char_vectorizer.transform(joined)]
    ).tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(matrix.multiply(1.0 / norms[:, None]))


def _summaries(session: Session, consults: list[ConsultRequest]) -> dict[int, str]:
    """The answer in short: the latest signed report's assessment and recommendation, or
    else the assigned specialist's last written message."""
    ids = [c.id for c in consults if c.id is not None]
    summaries: dict[int, str] = {}
    reports = session.exec(
        select(ConsultReport)
        .where(col(ConsultReport.consult_id).in_(ids), col(ConsultReport.signed_at).is_not(None))
        .order_by(col(ConsultReport.version))
    ).all()
    for report in reports:  # later versions overwrite earlier ones
        text = " — ".join(p for p in (report.assessment, report.recommendation) if p.strip())
        summaries[report.consult_id] = text or report.findings
    specialists = {c.id: c.assigned_specialist_id for c in consults}
    unanswered = [cid for cid in ids if cid not in summaries]
    messages = session.exec(
        select(ConsultMessage)
        .where(col(ConsultMessage.consult_id).in_(unanswered))
        .order_by(col(ConsultMessage.id))
    ).all()
    for message in messages:  # the last one written by the assigned specialist wins
        if message.author_id == specialists.get(message.consult_id):
            summaries[message.consult_id] = message.body
    return {
        cid: (s if len(s) <= SUMMARY_CHARS else s[: SUMMARY_CHARS - 1] + "…")
        for cid, s in summaries.items()
    }


def similar_consults(
    session: Session, viewing: Viewing, settings: Settings, *, count: int = SIMILAR_COUNT
) -> list[SimilarConsult]:
    """The closed consults most like this one that the viewer may open in full, by the same
    access rule as every route (server.consults.access); audited as a read."""
    user, consult = viewing.user, viewing.consult
    if not is_enabled(session, user.organisation_id):
        raise AssistOff()
    organisations = consenting_organisations(session)
    # Narrowed in SQL to the relations under which access_of can grant a closed consult
    # (assigned to the viewer, or of the viewer's organisation on either side; the pool
    # sees open consults only), to keep the scan small; the rule itself (access_of) then
    # decides for each consult. A relation added to access.py must be added here too.
    candidates = session.exec(
        select(ConsultRequest)
        .where(
            col(ConsultRequest.status).in_(CLOSED),
            ConsultRequest.id != consult.id,
            col(ConsultRequest.organisation_id).in_(organisations),
            or_(
                ConsultRequest.assigned_specialist_id == user.id,
                ConsultRequest.organisation_id == user.organisation_id,
                ConsultRequest.assigned_organisation_id == user.organisation_id,
            ),
        )
        .order_by(col(ConsultRequest.id).desc())
        .limit(SIMILAR_CANDIDATES)
    ).all()
    allowed = [c for c in candidates if sees_full_record(access_of(user, c))]
    import numpy as np

    if not allowed:
        found: list[SimilarConsult] = []
    else:
        trained = current_model(session, settings)
        vectors = _vectors(
            trained, [consult.clinical_question, *(c.clinical_question for c in allowed)]
        )
        scores = (vectors[1:] @ vectors[0].T).toarray().ravel()
        order = [int(i) for i in np.argsort(-scores)[:count] if scores[i] > 0]
        chosen = [allowed[i] for i in order]
        summaries = _summaries(session, chosen)
        found = [
            SimilarConsult(
                c,
                float(scores[i]),
                summaries.get(c.id or 0, ""),
                c.outcome.value if c.outcome else c.status.value,
            )
            for i, c in zip(order, chosen, strict=True)
        ]
    audit.record(
        session,
        "assist.similar_viewed",
        actor_id=user.id,
        ip=viewing.ip,
        object_type="consult",
        object_id=consult.public_id,
        organisation_id=user.organisation_id,
        detail={"shown": [s.consult.public_id for s in found]},
    )
    return found


# --- figures -------------------------------------------------------------------------


@dataclass
class Uptake:
    """How often the organisation's GPs took the suggestions."""

    shown: int = 0
    decided: int = 0  # followed by a request, with a specialty suggested
    took_specialty: int = 0
    in_top_three: int = 0
    urgent_suggested: int = 0
    urgent_taken: int = 0
    since: datetime | None = None
    by_source: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None


def uptake(session: Session, organisation_id: int) -> Uptake:
    rows = session.exec(
        select(AssistSuggestion).where(AssistSuggestion.organisation_id == organisation_id)
    ).all()
    figures = Uptake(shown=len(rows))
    for row in rows:
        figures.by_source[row.model_source] = figures.by_source.get(row.model_source, 0) + 1
        if figures.since is None or row.created_at < figures.since:
            figures.since = row.created_at
        if row.consult_id is None:
            continue
        if row.took_specialty is not None:
            figures.decided += 1
            figures.took_specialty += bool(row.took_specialty)
            figures.in_top_three += bool(row.in_top_three)
        if row.urgent:
            figures.urgent_suggested += 1
            figures.urgent_taken += bool(row.took_urgency)
    return figures
