"""Attachments: kind from the bytes, the size limit, storage and serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.app import create_app
from server.consults.attachments import sniff
from server.consults.models import AttachmentKind, ConsultAttachment, ConsultStatus
from tests.conftest import make_client, make_settings
from tests.consults.helpers import (
    dicom_bytes,
    jpeg_bytes,
    make_consult,
    make_team,
    pdf_bytes,
    png_bytes,
)
from tests.factories import login

LIMIT = 4096


@pytest.fixture
def small_app(database_url: str, tmp_path: Path) -> FastAPI:
    """An app with a 4 KiB limit and its own attachment directory."""
    return create_app(make_settings(database_url, tmp_path, attachment_max_bytes=LIMIT))


@pytest.fixture
def small_client(small_app: FastAPI) -> Iterator[TestClient]:
    with make_client(small_app) as test_client:
        yield test_client


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_sniffing_ignores_names() -> None:
    assert sniff(jpeg_bytes()) == AttachmentKind.JPEG
    assert sniff(png_bytes()) == AttachmentKind.PNG
    assert sniff(pdf_bytes()) == AttachmentKind.PDF
    assert sniff(dicom_bytes()) == AttachmentKind.DICOM
    assert sniff(b"<!doctype html><script>alert(1)</script>") is None
    assert sniff(b"\x00" * 200) is None


def test_html_named_jpg_is_refused_and_nothing_stored(
    small_client: TestClient, small_app: FastAPI, db: Session
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    login(small_client, team.gp)
    root = small_app.state.settings.resolved_attachments_dir()
    for body, name in [
        (b"<html><script>alert(document.cookie)</script></html>", "xray.jpg"),
        (b"\xff\xd8\xff<html><script>alert(1)</script></html>", "fake.jpg"),  # JPEG magic only
    ]:
        refused = small_client.post(
            f"/api/consults/{consult.public_id}/attachments",
            files={"file": (name, body, "image/jpeg")},
        )
        assert refused.status_code == 415, refused.text
        assert refused.json()["error"]["code"] == "attachment_type_refused"
    assert files_under(root) == []
    assert (
        db.exec(select(ConsultAttachment).where(ConsultAttachment.consult_id == consult.id)).all()
        == []
    )


@pytest.mark.parametrize("multipart", [True, False])
def test_oversize_upload_is_413_and_leaves_no_file(
    small_client: TestClient, small_app: FastAPI, db: Session, multipart: bool
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    login(small_client, team.gp)
    root = small_app.state.settings.resolved_attachments_dir()
    big = png_bytes() + b"\x00" * (LIMIT + 1)
    url = f"/api/consults/{consult.public_id}/attachments"
    if multipart:
        response = small_client.post(url, files={"file": ("big.png", big, "image/png")})
    else:

        def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to refuse early
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]

        response = small_client.post(url + "?filename=big.png", content=chunks())
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "attachment_too_large"
    assert files_under(root) == []
    assert (
        db.exec(select(ConsultAttachment).where(ConsultAttachment.consult_id == consult.id)).all()
        == []
    )


def test_upload_at_the_limit_is_stored_once_by_content(
    small_client: TestClient, small_app: FastAPI, db: Session
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    login(small_client, team.gp)
    root = small_app.state.settings.resolved_attachments_dir()
    url = f"/api/consults/{consult.public_id}/attachments"
    body = pdf_bytes() + b"%" * (LIMIT - len(pdf_bytes()))
    first = small_client.post(url + "?filename=referral.pdf", content=body)
    second = small_client.post(url, files={"file": ("copy.pdf", body, "application/pdf")})
    assert first.status_code == second.status_code == 201
    stored = [
        p for p in files_under(root) if p.relative_to(root).parts[0] not in ("thumbnails", "tmp")
    ]
    assert len(stored) == 1 and stored[0].read_bytes() == body
    download = small_client.get(first.json()["url"])
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in download.headers["content-security-policy"]


def test_dicom_and_jpeg_are_accepted_and_filenames_checked(client: TestClient, db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    login(client, team.gp)
    url = f"/api/consults/{consult.public_id}/attachments"
    dicom = client.post(url + "?filename=ct.dcm", content=dicom_bytes())
    assert dicom.status_code == 201 and dicom.json()["kind"] == "dicom"
    assert not dicom.json()["has_thumbnail"]
    jpeg = client.post(url, files={"file": ("../../etc/사진.jpg", jpeg_bytes(), "text/html")})
    assert jpeg.status_code == 201 and jpeg.json()["filename"] == "사진.jpg"
    named = client.post(url + "?filename=850101-1234567.jpg", content=jpeg_bytes())
    assert named.status_code == 422
    assert named.json()["error"]["code"] == "registration_number_refused"
