"""Nothing leaves the server: the whole assist (analyser load, training, suggestion, similar
consults) runs with every outbound connection refused; the model is kept in var/."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from server.accounts.models import OrgKind, Role
from server.assist import model as specialty_model
from server.assist import service, text
from server.consults.access import load_consult
from server.consults.models import ConsultStatus
from tests.assist.helpers import consent, seed_specialties
from tests.conftest import make_settings
from tests.factories import make_consult_row, make_organisation, make_user


def _loopback(address: Any) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
    elif isinstance(address, str | bytes):
        return True  # a Unix socket path
    else:
        return False
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse (and note) every connection and name lookup that is not to this machine."""
    tried: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        if not _loopback(address):
            tried.append(f"connect {address!r}")
            raise ConnectionRefusedError("outbound connections are blocked in this test")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _loopback(address):
            tried.append(f"connect_ex {address!r}")
            return 111
        return real_connect_ex(self, address)

    def _literal(host: Any) -> bool:
        try:
            ipaddress.ip_address(str(host))
        except ValueError:
            return False
        return True

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        # An address literal needs no lookup (its connection is checked above); any other
        # name than this machine's would ask a DNS server.
        if host not in (None, "localhost") and not _literal(host):
            tried.append(f"getaddrinfo {host!r}")
            raise socket.gaierror("name lookups are blocked in this test")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return tried


def test_assist_works_with_outbound_connections_blocked(
    attempts: list[str], db: Session, database_url: str, tmp_path: Path
) -> None:
    # The block itself works: a connection to a documentation address is refused.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    attempts.clear()

    specialties = seed_specialties(db)
    clinic = make_organisation(db)
    hospital = make_organisation(db, kind=OrgKind.HOSPITAL)
    consent(db, clinic)
    consent(db, hospital)
    gp = make_user(db, Role.GP, organisation=clinic)
    specialist = make_user(
        db, Role.SPECIALIST, organisation=hospital, specialty=specialties["neurology"]
    )
    make_consult_row(
        db,
        gp,
        specialties["neurology"].id or 0,
        specialist=specialist,
        status=ConsultStatus.COMPLETED,
        clinical_question="손 떨림과 보행 장애, 파킨슨병 의심",
    )
    current = make_consult_row(
        db,
        gp,
        specialties["neurology"].id or 0,
        specialist=specialist,
        status=ConsultStatus.ACCEPTED,
        clinical_question="가만히 있을 때 손이 떨리고 걸음이 느림",
    )
    # A fresh data directory and a fresh analyser: everything loads and trains here.
    settings = make_settings(database_url, tmp_path)
    text.analyser.cache_clear()
    with Session(db.get_bind(), expire_on_commit=False) as session:
        suggestion = service.suggest(
            session, gp, "오른쪽 팔다리 힘이 빠지고 말이 어눌해졌습니다 30분 전부터", settings
        )
        viewing = load_consult(session, specialist, current.public_id)
        similar = service.similar_consults(session, viewing, settings)
        first_code = suggestion.specialties[0].specialty.code
        similar_questions = [s.consult.clinical_question for s in similar]
        session.rollback()
    assert first_code == "neurology"
    assert "stroke_window" in [f.rule.id for f in suggestion.urgency.flags]
    assert similar_questions[:1] == ["손 떨림과 보행 장애, 파킨슨병 의심"]
    # The trained model was written under the data directory, nowhere else.
    assert specialty_model.store_for(tmp_path).path.is_file()
    assert specialty_model.store_for(tmp_path).path.is_relative_to(tmp_path)
    assert attempts == []
