"""Assist pages: the administrator's switch and figures, the specialist's similar cases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from server.accounts.deps import AdminUser, SettingsDep, client_ip
from server.accounts.models import Organisation
from server.assist import model as specialty_model
from server.assist import service
from server.assist.models import AssistConsent
from server.consults.deps import ConsultForAssigned
from server.db import SessionDep
from web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/admin/assist")
def admin_page(
    request: Request, session: SessionDep, admin: AdminUser, settings: SettingsDep
) -> Response:
    """Consent for the organisation, how often its GPs took the suggestions, the model."""
    figures = service.uptake(session, admin.organisation_id)
    return render(
        request,
        "assist/admin.html",
        organisation=session.get(Organisation, admin.organisation_id),
        consent=session.get(AssistConsent, admin.organisation_id),
        figures=figures,
        rate=service.Uptake.rate,
        # Only what is on disk: the page never trains a model.
        trained=specialty_model.store_for(settings.var_dir).load(),
        real_consults=service.count_real_examples(session),
        needed=settings.assist_min_real_consults,
    )


@router.post("/admin/assist/consent")
def admin_consent(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    enabled: Annotated[bool, Form()],
) -> Response:
    service.set_enabled(session, admin, enabled, ip=client_ip(request))
    return RedirectResponse("/admin/assist", status_code=303)


@router.get("/assist/similar/{public_id}")
def similar_page(
    request: Request, viewing: ConsultForAssigned, session: SessionDep, settings: SettingsDep
) -> Response:
    """The five closed consults most like this one that the specialist may open."""
    return render(
        request,
        "assist/similar.html",
        consult=viewing.consult,
        similar=service.similar_consults(session, viewing, settings),
    )
