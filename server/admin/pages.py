"""Administrator pages. Rules live in server.accounts.service; these only render and redirect.

An administrator sees and changes the users of their own organisation; another
organisation's user is absent (404). Organisations and specialties are shared lists.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from server.accounts import service as accounts
from server.accounts.deps import AdminUser, client_ip
from server.accounts.ending import announce_ended
from server.accounts.models import Organisation, Region, Role, Specialty, User
from server.db import SessionDep
from server.errors import AppError
from server.validation import PathId
from web.render import form_error, render

router = APIRouter(prefix="/admin", include_in_schema=False)


def _specialties(session: SessionDep) -> list[Specialty]:
    return list(session.exec(select(Specialty).order_by(col(Specialty.code))).all())


def _users_view(
    request: Request,
    session: SessionDep,
    admin: User,
    *,
    status: int = 200,
    error: str = "",
    form: dict[str, Any] | None = None,
) -> Response:
    return render(
        request,
        "admin/users.html",
        status=status,
        staff=accounts.visible_users(session, admin, admin.organisation_id),
        organisation=session.get(Organisation, admin.organisation_id),
        specialties=_specialties(session),
        roles=[r.value for r in Role],
        error=error,
        form=form or {},
    )


@router.get("/users")
def users_page(request: Request, session: SessionDep, admin: AdminUser) -> Response:
    """The organisation's users, a form to add one, and (de)activation buttons."""
    return _users_view(request, session, admin)


@router.post("/users")
def users_create(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    email: Annotated[str, Form(max_length=254)],
    name: Annotated[str, Form(max_length=100)],
    role: Annotated[str, Form(max_length=20)],
    password: Annotated[str, Form(max_length=200)],
    specialty_id: Annotated[str, Form(max_length=12)] = "",
    locale: Annotated[str, Form(max_length=5)] = "ko",
) -> Response:
    form = {"email": email, "name": name, "role": role, "specialty_id": specialty_id}
    try:
        if specialty_id and not specialty_id.isdigit():
            raise AppError("invalid_specialty", "a specialist needs a known specialty", 422)
        accounts.create_user(
            session,
            email=email,
            name=name,
            role=role,
            organisation_id=admin.organisation_id,
            password=password,
            specialty_id=int(specialty_id) if specialty_id else None,
            locale=locale,
            actor_id=admin.id,
            ip=client_ip(request),
        )
    except AppError as refused:
        # create_user validates before it writes: nothing to undo, show the form again.
        return _users_view(
            request,
            session,
            admin,
            status=refused.status,
            error=form_error(request, refused.template, refused.params),
            form=form,
        )
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{user_id}/active")
def users_set_active(
    user_id: PathId,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    active: Annotated[bool, Form()],
    tasks: BackgroundTasks,
) -> Response:
    accounts.set_active(session, admin, user_id, active, ip=client_ip(request))
    if not active:
        announce_ended(request, tasks, user_id, None)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{user_id}/sessions/revoke")
def users_revoke_sessions(
    user_id: PathId,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    tasks: BackgroundTasks,
) -> Response:
    """End every session of a colleague; their open sockets close too."""
    accounts.revoke_sessions(session, admin, user_id, ip=client_ip(request))
    announce_ended(request, tasks, user_id, None)
    return RedirectResponse("/admin/users", status_code=303)


@router.get("/organisations")
def organisations_page(request: Request, session: SessionDep, admin: AdminUser) -> Response:
    """The directory of organisations with their regions (no staff of others)."""
    regions = {r.id: r for r in session.exec(select(Region)).all()}
    rows = session.exec(select(Organisation).order_by(col(Organisation.id))).all()
    return render(request, "admin/organisations.html", organisations=rows, regions=regions)


def _specialties_view(
    request: Request,
    session: SessionDep,
    *,
    status: int = 200,
    error: str = "",
    form: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "admin/specialties.html",
        status=status,
        specialties=_specialties(session),
        error=error,
        form=form or {},
    )


@router.get("/specialties")
def specialties_page(request: Request, session: SessionDep, admin: AdminUser) -> Response:
    return _specialties_view(request, session)


@router.post("/specialties")
def specialties_create(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    code: Annotated[str, Form(max_length=40)],
    name_ko: Annotated[str, Form(max_length=100)],
    name_en: Annotated[str, Form(max_length=100)],
) -> Response:
    form = {"code": code, "name_ko": name_ko, "name_en": name_en}
    try:
        accounts.create_specialty(
            session,
            code=code,
            name_ko=name_ko,
            name_en=name_en,
            actor_id=admin.id,
            organisation_id=admin.organisation_id,
            ip=client_ip(request),
        )
    except AppError as refused:
        return _specialties_view(
            request,
            session,
            status=refused.status,
            error=form_error(request, refused.template, refused.params),
            form=form,
        )
    return RedirectResponse("/admin/specialties", status_code=303)


@router.get("/rosters")
def rosters_page(request: Request, session: SessionDep, admin: AdminUser) -> Response:
    """The hospital's specialists, each linking to scheduling's roster page."""
    specialists = session.exec(
        select(User)
        .where(User.organisation_id == admin.organisation_id, User.role == Role.SPECIALIST)
        .order_by(col(User.name))
    ).all()
    specialties = {s.id: s for s in _specialties(session)}
    return render(request, "admin/rosters.html", specialists=specialists, specialties=specialties)
