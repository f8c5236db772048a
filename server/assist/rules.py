"""Urgency red flags: the rules of `data/red_flags.toml` (KTAS-based), matched as plain text.

The rules only ever suggest "urgent"; `suggest_urgency` never returns anything below what
the GP chose. The file is read again when it changes, so clinicians can edit it in place.
"""

from __future__ import annotations

import re
import threading
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from server.consults.models import Urgency

RULES_PATH = Path(__file__).resolve().parent / "data" / "red_flags.toml"

# A term does not count when a negation follows it ("흉통 없음", "흉통(-)", "흉통은 부인")
# or precedes it ("no chest pain", "denies sweating", "without weakness").
_NEGATED_AFTER = re.compile(r"^\s*(?:은|는|이|가|도)?\s*(?:없|\(-\)|음성|부인|아니|않|x\b)")
_NEGATED_BEFORE = re.compile(
    r"(?:\bno|\bnot|\bdenies|\bdenied|\bwithout|\bnegative for)\s+(?:\w+\s+){0,2}$"
)

_WORD_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "half an": 0.5,
    "an": 1,
    "a": 1,
    "한": 1,
    "두": 2,
    "세": 3,
    "네": 4,
    "다섯": 5,
    "여섯": 6,
}
_UNIT_HOURS = {
    "분": 1 / 60,
    "min": 1 / 60,
    "minute": 1 / 60,
    "minutes": 1 / 60,
    "mins": 1 / 60,
    "시간": 1.0,
    "h": 1.0,
    "hr": 1.0,
    "hrs": 1.0,
    "hour": 1.0,
    "hours": 1.0,
    "일": 24.0,
    "day": 24.0,
    "days": 24.0,
    "주": 168.0,
    "week": 168.0,
    "weeks": 168.0,
    "개월": 720.0,
    "month": 720.0,
    "months": 720.0,
}
_NUMBER = "(" + "|".join([r"\d+(?:\.\d+)?", *(re.escape(w) for w in _WORD_NUMBERS)]) + ")"
# Longest unit first, so "hours" is not read as "h".
_UNITS = "|".join(sorted(_UNIT_HOURS, key=len, reverse=True))
_DURATION = re.compile(_NUMBER + r"\s*(" + _UNITS + r")(?![a-z])")
_RECENT = re.compile(r"방금|조금 전|몇 분 전|just now|minutes ago|a few minutes")
_LONG_AGO = re.compile(r"어제|그제|며칠|지난주|지난 주|yesterday|last week|several days|a few days")

_VITALS: dict[str, re.Pattern[str]] = {
    "spo2": re.compile(
        r"(?:spo2|sp02|sao2|산소\s*포화도|포화도|o2\s*sat\w*|\bsats?\b|saturation)\D{0,8}?(\d{2,3})"
    ),
    "sbp": re.compile(
        r"(?:\bbp\b|혈압|blood pressure|수축기\s*혈압|sbp)\D{0,8}?(\d{2,3})(?:\s*/\s*\d{2,3})?"
    ),
    "hr": re.compile(r"(?:\bhr\b|\bpr\b|맥박|심박수?|heart rate|pulse)\D{0,8}?(\d{2,3})"),
    "rr": re.compile(r"(?:\brr\b|호흡수|resp\w* rate)\D{0,8}?(\d{1,2})"),
    "gcs": re.compile(r"(?:\bgcs\b)\D{0,6}?(\d{1,2})"),
    "glucose": re.compile(
        r"(?:혈당|glucose|\bbst\b|blood sugar|\bsugar\b|\bbgl\b)\D{0,10}?(\d{2,4})"
    ),
    "temp": re.compile(
        r"(?:체온|\btemp\w*|\bbt\b|발열|열이)\D{0,8}?(\d{2}(?:\.\d)?)\s*(?:도|°|℃|c\b)?"
    ),
}


@dataclass(frozen=True)
class Rule:
    id: str
    ktas: int
    reason_ko: str
    reason_en: str
    groups: tuple[tuple[re.Pattern[str], ...], ...] = ()
    onset_within_hours: float | None = None
    onset_unknown_is_urgent: bool = False
    vital: str = ""
    below: float | None = None
    above: float | None = None

    def reason(self, locale: str) -> str:
        return self.reason_ko if locale == "ko" else self.reason_en


@dataclass(frozen=True)
class Flag:
    """A rule that fired, with the words that made it fire."""

    rule: Rule
    evidence: tuple[str, ...]


@dataclass
class UrgencySuggestion:
    """What the rules suggest; `urgency` is never below what the GP chose."""

    urgency: Urgency
    flags: list[Flag] = field(default_factory=list)

    @property
    def raised(self) -> bool:
        return bool(self.flags)


class RulesError(ValueError):
    """The rules file is malformed (the message names the rule)."""


def normalise(text: str) -> str:
    """NFKC (full-width digits and letters typed on Korean keyboards), lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def _term_pattern(term: str) -> re.Pattern[str]:
    # Spaces inside a term are optional: Korean is often written without them.
    parts = [re.escape(part) for part in normalise(term).split()]
    return re.compile(r"\s*".join(parts))


def _parse(data: dict[str, object]) -> list[Rule]:
    rules: list[Rule] = []
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise RulesError("the file must hold [[rule]] tables")
    seen: set[str] = set()
    for raw in raw_rules:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise RulesError("every rule needs an id")
        rule_id: str = raw["id"]
        if rule_id in seen:
            raise RulesError(f"rule {rule_id}: the id is used twice")
        seen.add(rule_id)
        groups_raw = raw.get("all", [])
        vital = str(raw.get("vital", ""))
        if vital and vital not in _VITALS:
            raise RulesError(f"rule {rule_id}: unknown vital {vital!r}")
        if not vital and not groups_raw:
            raise RulesError(f"rule {rule_id}: needs `all` or `vital`")
        if vital and raw.get("below") is None and raw.get("above") is None:
            raise RulesError(f"rule {rule_id}: a vital rule needs `below` or `above`")
        if not isinstance(groups_raw, list) or not all(
            isinstance(g, list) and g and all(isinstance(t, str) and t.strip() for t in g)
            for g in groups_raw
        ):
            raise RulesError(f"rule {rule_id}: `all` must be a list of lists of terms")
        for key in ("reason_ko", "reason_en"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise RulesError(f"rule {rule_id}: needs {key}")
        onset = raw.get("onset_within_hours")
        below, above = raw.get("below"), raw.get("above")
        rules.append(
            Rule(
                id=rule_id,
                ktas=int(raw.get("ktas", 2)),
                reason_ko=raw["reason_ko"],
                reason_en=raw["reason_en"],
                groups=tuple(tuple(_term_pattern(t) for t in group) for group in groups_raw),
                onset_within_hours=float(onset) if onset is not None else None,
                onset_unknown_is_urgent=bool(raw.get("onset_unknown_is_urgent", False)),
                vital=vital,
                below=float(below) if below is not None else None,
                above=float(above) if above is not None else None,
            )
        )
    return rules


def parse_rules(text: str) -> list[Rule]:
    """Rules from the TOML text; RulesError names what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"not valid TOML: {error}") from None
    return _parse(data)


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[float, list[Rule]]] = {}


def load_rules(path: Path = RULES_PATH) -> list[Rule]:
    """The rules of the file, read again when its modification time changes."""
    mtime = path.stat().st_mtime
    with _cache_lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    rules = parse_rules(path.read_text(encoding="utf-8"))
    with _cache_lock:
        _cache[path] = (mtime, rules)
    return rules


def _find(pattern: re.Pattern[str], text: str) -> str | None:
    """The first occurrence of the term that is not negated."""
    for match in pattern.finditer(text):
        after = text[match.end() : match.end() + 8]
        before = text[max(0, match.start() - 30) : match.start()]
        if _NEGATED_AFTER.search(after) or _NEGATED_BEFORE.search(before):
            continue
        return match.group(0)
    return None


def onset_hours(text: str) -> float | None:
    """The shortest time since onset the text mentions, in hours (None: none mentioned)."""
    found: list[float] = []
    for number, unit in _DURATION.findall(text):
        value = _WORD_NUMBERS.get(number)
        amount = value if value is not None else float(number)
        found.append(amount * _UNIT_HOURS[unit])
    if _RECENT.search(text):
        found.append(0.0)
    if _LONG_AGO.search(text):
        found.append(24.0)
    return min(found) if found else None


def vital_values(text: str, vital: str) -> list[float]:
    """Every value of this vital sign the text states."""
    return [float(v) for v in _VITALS[vital].findall(text)]


def _fires(rule: Rule, text: str) -> Flag | None:
    if rule.vital:
        for value in vital_values(text, rule.vital):
            if (rule.below is not None and value < rule.below) or (
                rule.above is not None and value > rule.above
            ):
                return Flag(rule, (f"{rule.vital} {value:g}",))
        return None
    evidence: list[str] = []
    for group in rule.groups:
        hit = next((h for h in (_find(p, text) for p in group) if h is not None), None)
        if hit is None:
            return None
        evidence.append(hit)
    if rule.onset_within_hours is not None:
        onset = onset_hours(text)
        if onset is None and not rule.onset_unknown_is_urgent:
            return None
        if onset is not None and onset > rule.onset_within_hours:
            return None
    return Flag(rule, tuple(evidence))


def red_flags(text: str, rules: list[Rule] | None = None) -> list[Flag]:
    """The rules that fire on this text, most acute (lowest KTAS level) first."""
    normalised = normalise(text)
    flags = [f for f in (_fires(r, normalised) for r in rules or load_rules()) if f]
    return sorted(flags, key=lambda f: f.rule.ktas)


ORDER = {Urgency.ROUTINE: 0, Urgency.SOON: 1, Urgency.URGENT: 2}


def suggest_urgency(
    text: str, chosen: Urgency = Urgency.ROUTINE, rules: list[Rule] | None = None
) -> UrgencySuggestion:
    """ "urgent" with the reasons when a red flag fires; never below what the GP chose."""
    flags = red_flags(text, rules)
    suggested = Urgency.URGENT if flags else chosen
    if ORDER[chosen] > ORDER[suggested]:
        suggested = chosen
    return UrgencySuggestion(suggested, flags)
