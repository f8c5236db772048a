"""Korean resident registration numbers (주민등록번호) are never stored.

Every free-text field of a consult passes through `refuse_registration_numbers`.
A match needs the shape YYMMDD-NNNNNNN (hyphen, dash or space) or the same 13 digits
run together, standing alone (no digit either side); a real date of birth in
YYMMDD; and a 7th digit of the known family (1–4 citizens, 5–8 foreign residents,
9/0 born in the 1800s) that also fixes the century, so 29 February is checked in
the right year. The old check digit is deliberately *not* required: numbers issued
since October 2020 end in random digits, and missing one is worse than a false alarm.
Dates (2024-01-15, 20240115), phone numbers (010-1234-5678) and times do not match.
"""

from __future__ import annotations

import re
import unicodedata
from calendar import monthrange
from collections.abc import Mapping

from server.consults.errors import RegistrationNumberRefused

_CANDIDATE = re.compile(
    r"(?<!\d)(\d{2})(\d{2})(\d{2})"  # YYMMDD, no digit before
    r"[-\u2010\u2011\u2012\u2013\u2014 ]?"  # hyphen, dash or space, or nothing
    r"(\d)(\d{6})(?!\d)"  # the century/sex digit and six more, no digit after
)
_CENTURY = {
    "1": 1900,
    "2": 1900,
    "5": 1900,
    "6": 1900,
    "3": 2000,
    "4": 2000,
    "7": 2000,
    "8": 2000,
    "9": 1800,
    "0": 1800,
}


def _is_birth_date(yy: str, mm: str, dd: str, family: str) -> bool:
    year = _CENTURY[family] + int(yy)
    month, day = int(mm), int(dd)
    if not 1 <= month <= 12:
        return False
    return 1 <= day <= monthrange(year, month)[1]


def contains_registration_number(text: str) -> bool:
    """True when the text holds something shaped like a resident registration number."""
    # NFKC turns full-width digits and dashes (typed on Korean keyboards) into ASCII.
    normalised = unicodedata.normalize("NFKC", text)
    for match in _CANDIDATE.finditer(normalised):
        yy, mm, dd, family, _rest = match.groups()
        if _is_birth_date(yy, mm, dd, family):
            return True
    return False


def refuse_registration_numbers(fields: Mapping[str, str | None]) -> None:
    """Raise 422 naming the first field that holds a registration number (never echoing it)."""
    for name, value in fields.items():
        if value and contains_registration_number(value):
            raise RegistrationNumberRefused(name)


def strip_registration_numbers(text: str) -> str:
    """The text with every registration number taken out (the form comes back with what
    was typed, minus the number, which is never sent back)."""
    normalised = unicodedata.normalize("NFKC", text)
    if normalised != text and not contains_registration_number(text):
        return text

    def cut(match: re.Match[str]) -> str:
        yy, mm, dd, family, _rest = match.groups()
        return "" if _is_birth_date(yy, mm, dd, family) else match.group(0)

    return _CANDIDATE.sub(cut, normalised)
