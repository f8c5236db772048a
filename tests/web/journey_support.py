"""What the journey tests (test_browser_journeys.py) share: the people, and the check
that a Korean page shows no English word."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from typing import Any

from sqlmodel import Session

from server.accounts.models import User
from tests.scheduling.factories import every_day
from tests.web.support import make_call_case

# Words that may stand in a Korean page: names of formats, standards and units, the
# language switch (it names English in English), and the sample images' file names.
ALLOWED_WORDS = frozenset(
    {
        "English",
        "JPEG",
        "PNG",
        "PDF",
        "DICOM",
        "FHIR",
        "SHA",
        "KB",
        "MB",
        "ECG",
        "kbps",
        "ms",  # round-trip time on the call page
        "png",
        "jpg",
        "ecg",
    }
)
WORD = re.compile(r"[A-Za-z]{2,}")
HEX = re.compile(r"[0-9a-f]{12,}")


def english_words(page: Any) -> list[str]:
    """Latin-script words on the visible page that are not allowed proper names."""
    # Signature hashes (SHA-256 in hex) are figures, not words.
    text = HEX.sub(" ", page.locator("body").inner_text())
    # The specialties offered are the shared test database's data (names other tests
    # made), not the interface's words.
    data = " ".join(page.locator("select[name=specialty_id] option").all_inner_texts())
    names = set(WORD.findall(data))
    return sorted(
        {word for word in WORD.findall(text) if word not in ALLOWED_WORDS and word not in names}
    )


@dataclass
class People:
    gp: User
    specialist: User
    specialty_id: int


def journey_people(db: Session) -> People:
    """A clinic's GP and a hub cardiologist whose roster has a slot at any hour."""
    case = make_call_case(db)
    every_day(db, case.specialist, time(0, 0), time(23, 40))
    return People(case.gp, case.specialist, case.consult.specialty_id)


def accept_dialogs(page: Any) -> None:
    """Confirm every "this cannot be undone" question (the test means it)."""
    page.on("dialog", lambda dialog: dialog.accept())
