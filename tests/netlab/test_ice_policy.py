"""Relay-only calls as a setting: DARI_ICE_TRANSPORT_POLICY reaches the call page."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import Session

from server.app import create_app
from tests.conftest import make_client, make_settings
from tests.factories import login
from tests.web.support import make_call_case


def test_the_call_page_carries_the_ice_policy(
    client: TestClient, db: Session, database_url: str, tmp_path: Path
) -> None:
    case = make_call_case(db)
    # The pre-call check measures through the same path as the call.
    for path in (f"/consults/{case.consult.public_id}/call", "/precall"):
        login(client, case.gp)
        assert 'data-ice-policy="all"' in client.get(path).text  # the default: any path
        relay_app = create_app(make_settings(database_url, tmp_path, ice_transport_policy="relay"))
        with make_client(relay_app) as relay_client:
            login(relay_client, case.gp)
            assert 'data-ice-policy="relay"' in relay_client.get(path).text


def test_an_unknown_ice_policy_is_refused(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        make_settings(database_url, tmp_path, ice_transport_policy="direct")
