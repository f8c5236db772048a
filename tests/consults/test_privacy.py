"""Resident registration numbers are refused in free text; dates and phones are not."""

from __future__ import annotations

import pytest

from server.consults.errors import RegistrationNumberRefused
from server.consults.privacy import contains_registration_number, refuse_registration_numbers


@pytest.mark.parametrize(
    "text",
    [
        "환자 주민번호 850101-1234567 입니다",
        "8501011234567",
        "RRN 991231-2000000, please",
        "born 000229-3123456",  # 29 Feb 2000 (4 → 2000s)
        "020304-4123456",
        "foreign resident 900515-5123456",
        "８５０１０１－１２３４５６７",  # full-width, as typed on a Korean keyboard
        "850101 1234567",
    ],
)
def test_registration_numbers_are_found(text: str) -> None:
    assert contains_registration_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "Seen on 2024-01-15 and 2024.01.20",
        "20240115",
        "Call 010-1234-5678 or 02-123-4567",
        "01012345678",
        "+82-10-1234-5678",
        "BP 120/80, HR 72, SpO2 98%, glucose 110 mg/dL",
        "timestamp 20241105123045",
        "991332-1234567",  # month 13
        "850230-1234567",  # 30 February
        "010229-3123456",  # 29 Feb 2001 does not exist
        "12345678901234",  # 14 digits
        "lab id 851301-1234567",
        "chart C-2024-0042",
    ],
)
def test_no_false_alarm(text: str) -> None:
    assert not contains_registration_number(text)


def test_refusal_names_the_field_and_never_echoes_the_number() -> None:
    with pytest.raises(RegistrationNumberRefused) as refused:
        refuse_registration_numbers({"history": "ok", "medication": "id 850101-1234567"})
    assert refused.value.field == "medication"
    assert refused.value.status == 422
    assert "resident registration number" in refused.value.message
    assert "1234567" not in refused.value.message
