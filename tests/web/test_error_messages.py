"""Every refusal the server raises is translated: a static scan of server/ for the message
of each AppError (and of its subclasses), checked against the Korean catalogs; and a few
refused actions seen through the pages, in Korean."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import date, time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import OrgKind, Role
from server.consults.models import ConsultStatus
from tests.factories import TEST_PASSWORD, login, make_organisation, make_specialty, make_user
from tests.scheduling.factories import every_day, make_hospital, make_specialist
from tests.web.support import make_call_case
from web import i18n

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server"
HTML = {"Accept": "text/html"}
HANGUL = re.compile(r"[\uac00-\ud7a3]")

# Messages that are not a literal where raised, each checked by other means.
PASSED_THROUGH = {
    # password_problem() returns one of the N_ constants of server/accounts/security.py,
    # which tests/web/test_i18n.py finds and checks.
    ("server/accounts/service.py", "problem"),
}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


class Scan:
    """The error classes of server/ and the message of every one constructed."""

    def __init__(self) -> None:
        self.trees = {path: ast.parse(path.read_text(), str(path)) for path in SERVER.rglob("*.py")}
        self.constants: dict[str, str] = {}
        classes: dict[str, ast.ClassDef] = {}
        for tree in self.trees.values():
            for statement in tree.body:
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                    target, value = statement.targets[0], self.literal(statement.value)
                    if isinstance(target, ast.Name) and value is not None:
                        self.constants[target.id] = value
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    classes[node.name] = node
        # name → its constructor's parameters (the message is the one named `message`).
        self.signatures: dict[str, tuple[str, ...]] = {"AppError": ("code", "message")}
        self.bases: dict[str, str] = {}
        grown = True
        while grown:
            grown = False
            for name, node in classes.items():
                base = next((b for b in map(_name, node.bases) if b in self.signatures), None)
                if name in self.signatures or base is None:
                    continue
                init = [
                    f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"
                ]
                args = init[0].args.args[1:] if init else []
                self.signatures[name] = (
                    tuple(a.arg for a in args) if init else self.signatures[base]
                )
                self.bases[name] = base
                grown = True
        self.classes = classes

    def literal(self, node: ast.expr) -> str | None:
        """The string of a literal message, or of N_("...") around one."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Call) and _name(node.func) == "N_" and len(node.args) == 1:
            return self.literal(node.args[0])
        return None

    def messages(self) -> Iterator[tuple[str, int, str | None, str]]:
        """(file, line, message or None, source of the argument) for every construction."""
        for path, tree in sorted(self.trees.items()):
            where = str(path.relative_to(ROOT))
            owner: dict[int, ast.ClassDef] = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    for inner in ast.walk(node):
                        owner.setdefault(id(inner), node)
            for node in ast.walk(tree):
                # A default message (Forbidden()).
                if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                    cls = owner.get(id(node))
                    if cls is not None and cls.name in self.signatures:
                        args = (
                            node.args.args[-len(node.args.defaults) :] if node.args.defaults else []
                        )
                        for param, default in zip(args, node.args.defaults, strict=True):
                            if param.arg == "message":
                                text = self.literal(default)
                                yield where, node.lineno, text, ast.unparse(default)
                if not isinstance(node, ast.Call):
                    continue
                signature = self._signature(node, owner)
                if signature is None or "message" not in signature:
                    continue
                index = signature.index("message")
                if len(node.args) > index:
                    arg: ast.expr | None = node.args[index]
                else:
                    arg = next((k.value for k in node.keywords if k.arg == "message"), None)
                if arg is None:
                    continue
                # A subclass handing its own `message` parameter on is checked where it is
                # constructed.
                if (
                    isinstance(arg, ast.Name)
                    and arg.id == "message"
                    and _name(node.func) == "__init__"
                ):
                    continue
                text = self.literal(arg)
                if text is None and isinstance(arg, ast.Name):
                    text = self.constants.get(arg.id)
                yield where, node.lineno, text, ast.unparse(arg)

    def _signature(self, call: ast.Call, owner: dict[int, ast.ClassDef]) -> tuple[str, ...] | None:
        func = call.func
        is_super = (
            isinstance(func, ast.Attribute)
            and func.attr == "__init__"
            and isinstance(func.value, ast.Call)
            and _name(func.value.func) == "super"
        )
        if is_super:
            cls = owner.get(id(call))
            base = self.bases.get(cls.name) if cls is not None else None
            return self.signatures[base] if base is not None else None
        name = _name(func)
        return self.signatures.get(name) if name is not None else None


def test_the_scan_finds_the_errors_and_their_messages() -> None:
    found = list(Scan().messages())
    texts = {text for _, _, text, _ in found}
    # A broken scan would find nothing and pass the test below.
    assert len(found) > 100
    assert {"you may not do this", "not found", "the last day is before the first"} <= texts
    assert "a user with email %(email)s already exists" in texts


def test_every_raised_message_has_a_korean_translation() -> None:
    korean = i18n.translations("ko")
    missing, unreadable = [], []
    for where, line, text, source in Scan().messages():
        if text is None:
            if (where, source) not in PASSED_THROUGH:
                unreadable.append(f"{where}:{line}: {source}")
        elif not HANGUL.search(korean.gettext(text)):
            missing.append(f"{where}:{line}: {text!r}")
    assert not unreadable, (
        "messages that are not a literal (make them a template with params):\n"
        + "\n".join(sorted(unreadable))
    )
    assert not missing, "messages without a Korean translation:\n" + "\n".join(sorted(missing))


def korean_refusal(page_text: str, english: str) -> None:
    """The page carries the Korean message, not the English one nor the generic one."""
    assert english not in page_text
    assert i18n.translations("ko").gettext("This could not be done. Nothing was changed.") not in (
        page_text
    )


def test_admin_creating_a_user_twice_reads_korean(client: TestClient, db: Session) -> None:
    hospital = make_organisation(db, kind=OrgKind.HOSPITAL, is_hub=True)
    admin = make_user(db, Role.ADMIN, organisation=hospital)
    taken = make_user(db, Role.GP, organisation=hospital)
    login(client, admin)
    form = {
        "email": taken.email,
        "name": "김하나",
        "role": "gp",
        "specialty_id": "",
        "locale": "ko",
        "password": TEST_PASSWORD,
    }
    refused = client.post("/admin/users", data=form, headers=HTML)
    assert refused.status_code == 409
    assert f"{taken.email} 계정이 이미 있습니다" in refused.text
    korean_refusal(refused.text, "already exists")


def test_a_leave_ending_before_it_starts_reads_korean(client: TestClient, db: Session) -> None:
    specialist = make_specialist(db, make_hospital(db), make_specialty(db))
    token = login(client, specialist)
    refused = client.post(
        f"/schedule/roster/{specialist.id}/exceptions",
        data={
            "kind": "leave",
            "date_from": date(2027, 3, 10).isoformat(),
            "date_to": date(2027, 3, 5).isoformat(),
            "csrf_token": token,
        },
        headers=HTML,
    )
    assert refused.status_code == 422
    assert "마지막 날이 첫날보다 앞섭니다" in refused.text
    korean_refusal(refused.text, "the last day is before the first")


def test_booking_a_booked_consult_again_reads_korean(client: TestClient, db: Session) -> None:
    case = make_call_case(db)
    case.consult.status = ConsultStatus.REQUESTED
    case.consult.assigned_specialist_id = None
    db.add(case.consult)
    db.commit()
    every_day(db, case.specialist, time(0, 0), time(23, 40))
    login(client, case.gp)
    slots = client.get("/api/slots", params={"specialty_id": case.consult.specialty_id}).json()
    ours = [s for s in slots if s["specialist_id"] == case.specialist.id]
    form = {
        "consult": case.consult.public_id,
        "specialist_id": str(case.specialist.id),
        "starts_at": ours[0]["starts_at"],
    }
    booked = client.post("/schedule/book", data=form, follow_redirects=False)
    assert booked.status_code == 303
    form["starts_at"] = ours[1]["starts_at"]
    again = client.post("/schedule/book", data=form, headers=HTML)
    assert again.status_code == 409
    assert "예약할 수 없습니다" in again.text or "이미 예약이 있습니다" in again.text
    korean_refusal(again.text, "cannot be booked")
    korean_refusal(again.text, "already has an appointment")
    # The API keeps its English message and stable code.
    api = client.post(
        "/api/appointments",
        json={
            "consult_id": case.consult.public_id,
            "specialist_id": case.specialist.id,
            "starts_at": ours[1]["starts_at"],
        },
    )
    assert api.status_code == 409
    assert api.json()["error"]["code"] in {"not_bookable", "already_scheduled"}
    assert not HANGUL.search(api.json()["error"]["message"])


def test_a_choice_of_parties_reads_in_the_pages_language() -> None:
    """A tuple value is a choice: each item and the word between them are translated
    (no "clinic or specialist" left in English on a Korean page)."""
    from server.errors import Forbidden
    from web.render import translate_message

    refusal = Forbidden(
        "only the %(who)s may move a %(current)s consult to %(target)s",
        params={"who": ("clinic", "specialist"), "current": "accepted", "target": "declined"},
    )
    english = "only the clinic or specialist may move a accepted consult to declined"
    assert refusal.message == english
    korean = translate_message(i18n.translations("ko"), refusal.template, refusal.params)
    assert "의원 또는 전문의만" in korean
    assert not re.search(r"[A-Za-z]", korean), korean
