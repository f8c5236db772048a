"""The red-flag rules: KTAS-based, read from the TOML file, never downgrading the GP."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.assist import rules
from server.consults.models import Urgency


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("2시간 전부터 가슴 통증과 식은땀이 납니다", "chest_pain_sweating"),
        ("가슴통증이 있고 식은땀을 흘립니다", "chest_pain_sweating"),
        ("Crushing chest pain for 40 minutes, sweaty and clammy", "chest_pain_sweating"),
        ("40분 전부터 오른쪽 팔다리에 힘이 빠지고 말이 어눌해졌습니다", "stroke_window"),
        ("Sudden facial droop and slurred speech, onset 1 hour ago", "stroke_window"),
        ("숨이 차서 말을 잇지 못합니다", "severe_breathing"),
        ("Severe shortness of breath, cannot finish sentences", "severe_breathing"),
        ("SpO2 86% on room air", "hypoxia"),
        ("산소포화도 88 입니다", "hypoxia"),
        ("BP 82/50", "shock"),
        ("생후 2개월 아기가 38.6도 열이 납니다", "infant_fever"),
        ("경련이 10분 넘게 멈추지 않습니다", "seizure_ongoing"),
        ("Glucose 520 with vomiting", "dka_hhs"),
    ],
)
def test_red_flags_fire_with_their_reason(text: str, rule_id: str) -> None:
    suggestion = rules.suggest_urgency(text)
    assert suggestion.urgency == Urgency.URGENT
    assert rule_id in [flag.rule.id for flag in suggestion.flags]
    flag = next(f for f in suggestion.flags if f.rule.id == rule_id)
    assert "KTAS" in flag.rule.reason("ko") and "KTAS" in flag.rule.reason("en")
    assert flag.evidence


@pytest.mark.parametrize(
    "text",
    [
        "흉통 없음, 식은땀 있음",
        "He denies chest pain but is sweating after exercise",
        "가슴 통증 3주째, 식은땀은 없음",
        "Left facial droop since yesterday",  # outside the stroke window
        "SpO2 97%, BP 130/80, HR 72",
        "Itchy rash on both forearms for two weeks",
    ],
)
def test_no_flag_on_negated_or_outside_window_or_normal(text: str) -> None:
    suggestion = rules.suggest_urgency(text)
    assert suggestion.flags == []
    assert suggestion.urgency == Urgency.ROUTINE


@pytest.mark.parametrize("chosen", list(Urgency))
def test_never_downgrades_what_the_gp_chose(chosen: Urgency) -> None:
    quiet = rules.suggest_urgency("Itchy rash for two weeks", chosen)
    assert quiet.urgency == chosen
    loud = rules.suggest_urgency("SpO2 84%", chosen)
    assert loud.urgency == Urgency.URGENT


def test_onset_parsing() -> None:
    assert rules.onset_hours("30분 전부터") == pytest.approx(0.5)
    assert rules.onset_hours("started two hours ago") == 2
    assert rules.onset_hours("3일째") == 72
    assert rules.onset_hours("no time given") is None


def test_rules_file_is_read_again_when_edited(tmp_path: Path) -> None:
    path = tmp_path / "flags.toml"
    path.write_text(
        '[[rule]]\nid = "x"\nreason_ko = "가"\nreason_en = "a"\nall = [["hiccups"]]\n',
        encoding="utf-8",
    )
    assert [r.id for r in rules.load_rules(path)] == ["x"]
    path.write_text(
        '[[rule]]\nid = "y"\nreason_ko = "가"\nreason_en = "a"\nvital = "hr"\nabove = 100\n',
        encoding="utf-8",
    )
    import os

    os.utime(path, (1, 1))  # a different modification time than the first write
    loaded = rules.load_rules(path)
    assert [r.id for r in loaded] == ["y"]
    assert rules.red_flags("HR 120", loaded)[0].rule.id == "y"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]]\nreason_ko='a'\n", "id"),
        ('[[rule]]\nid="a"\nreason_ko="a"\nreason_en="a"\n', "needs `all` or `vital`"),
        ('[[rule]]\nid="a"\nreason_ko="a"\nreason_en="a"\nvital="bogus"\nabove=1\n', "unknown"),
        ("not toml [", "TOML"),
    ],
)
def test_malformed_rules_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(rules.RulesError, match=message):
        rules.parse_rules(text)


def test_shipped_rules_parse() -> None:
    shipped = rules.load_rules()
    assert len(shipped) >= 10
    assert {"chest_pain_sweating", "stroke_window", "severe_breathing"} <= {r.id for r in shipped}
