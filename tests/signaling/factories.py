"""Consults, sessions and join tokens for signaling and calls tests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from server.accounts.models import LoginSession, OrgKind, Role, User
from server.accounts.security import new_token, token_hash
from server.clock import utcnow
from server.consults.models import ConsultRequest, ConsultStatus
from signaling import tokens
from tests.conftest import TEST_SECRET
from tests.factories import make_consult_row, make_organisation, make_specialty, make_user


def make_consult(
    db: Session,
    requester: User,
    *,
    specialist: User | None = None,
    status: ConsultStatus = ConsultStatus.SCHEDULED,
) -> ConsultRequest:
    specialty_id = (specialist.specialty_id if specialist else None) or make_specialty(db).id
    return make_consult_row(
        db,
        requester,
        specialty_id or 0,
        specialist=specialist,
        status=status,
        clinical_question="rash on both arms",
    )


@dataclass
class CallSetup:
    gp: User
    specialist: User
    consult: ConsultRequest

    @property
    def room(self) -> str:
        return self.consult.public_id


def make_call(db: Session) -> CallSetup:
    """A GP's consult with an assigned specialist: the two participants of a call."""
    gp = make_user(db, Role.GP)
    specialist = make_user(
        db, Role.SPECIALIST, organisation=make_organisation(db, kind=OrgKind.HOSPITAL)
    )
    return CallSetup(gp, specialist, make_consult(db, gp, specialist=specialist))


def session_cookie(db: Session, user: User) -> str:
    """A live login session for the user, without going through the login form."""
    token = new_token()
    now = utcnow()
    db.add(
        LoginSession(
            token_hash=token_hash(token), user_id=user.id or 0, created_at=now, last_seen_at=now
        )
    )
    db.commit()
    return token


def join_token(user: User, room: str, ttl: float = 120) -> str:
    """What POST /api/consults/{id}/join-token returns (same claims)."""
    return tokens.sign_join(
        TEST_SECRET,
        {"r": room, "k": f"user:{user.id}", "u": user.id, "n": user.name, "t": "user"},
        ttl,
    )
