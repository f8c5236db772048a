"""`dari assist evaluate`: the specialty model and the red-flag rules measured on the
held-out set shipped in `data/heldout.csv` (written for this, Korean and English, never
used in training)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.assist import model as specialty_model
from server.assist import rules


@dataclass
class SpecialtyScore:
    total: int = 0
    at_one: int = 0
    at_three: int = 0


@dataclass
class Evaluation:
    per_specialty: dict[str, SpecialtyScore] = field(default_factory=dict)
    per_language: dict[str, SpecialtyScore] = field(default_factory=dict)
    urgent_total: int = 0
    urgent_flagged: int = 0
    routine_total: int = 0
    routine_flagged: int = 0
    missed: list[str] = field(default_factory=list)
    timings_ms: list[float] = field(default_factory=list)

    @property
    def overall(self) -> SpecialtyScore:
        score = SpecialtyScore()
        for s in self.per_specialty.values():
            score.total += s.total
            score.at_one += s.at_one
            score.at_three += s.at_three
        return score

    @property
    def sensitivity(self) -> float:
        return self.urgent_flagged / self.urgent_total if self.urgent_total else 0.0

    @property
    def false_alarm_rate(self) -> float:
        return self.routine_flagged / self.routine_total if self.routine_total else 0.0


def evaluate(
    trained: specialty_model.TrainedModel, examples: Sequence[specialty_model.Example]
) -> Evaluation:
    """Accuracy at one and at three per specialty and language; the rules' sensitivity."""
    result = Evaluation()
    for example in examples:
        started = time.perf_counter()
        labels = [c.label for c in specialty_model.predict(trained, example.text)]
        flags = rules.red_flags(example.text)
        result.timings_ms.append((time.perf_counter() - started) * 1000)
        for key, table in (
            (example.label, result.per_specialty),
            (example.lang, result.per_language),
        ):
            score = table.setdefault(key, SpecialtyScore())
            score.total += 1
            score.at_one += labels[:1] == [example.label]
            score.at_three += example.label in labels[:3]
        if example.urgent:
            result.urgent_total += 1
            result.urgent_flagged += bool(flags)
            if not flags:
                result.missed.append(example.text)
        elif example.urgent is not None:
            result.routine_total += 1
            result.routine_flagged += bool(flags)
    return result


def report(result: Evaluation, trained: specialty_model.TrainedModel) -> list[str]:
    """The lines `dari assist evaluate` prints."""

    def pct(part: int, whole: int) -> str:
        return f"{100 * part / whole:5.1f}%" if whole else "    –"

    lines = [
        f"model {trained.version} ({trained.source}: {trained.n_seed} seed + "
        f"{trained.n_real} real questions)",
        "",
        f"{'specialty':<16}{'n':>4}  {'acc@1':>6}  {'acc@3':>6}",
    ]
    for name, score in sorted(result.per_specialty.items()):
        lines.append(
            f"{name:<16}{score.total:>4}  {pct(score.at_one, score.total)}  "
            f"{pct(score.at_three, score.total)}"
        )
    for name, score in sorted(result.per_language.items()):
        lines.append(
            f"{'language ' + name:<16}{score.total:>4}  {pct(score.at_one, score.total)}  "
            f"{pct(score.at_three, score.total)}"
        )
    overall = result.overall
    lines += [
        f"{'all':<16}{overall.total:>4}  {pct(overall.at_one, overall.total)}  "
        f"{pct(overall.at_three, overall.total)}",
        "",
        f"urgency rules: sensitivity {pct(result.urgent_flagged, result.urgent_total).strip()} "
        f"({result.urgent_flagged}/{result.urgent_total} urgent cases flagged), "
        f"false alarms {pct(result.routine_flagged, result.routine_total).strip()} "
        f"({result.routine_flagged}/{result.routine_total} non-urgent cases)",
    ]
    if result.timings_ms:
        ordered = sorted(result.timings_ms)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        lines.append(
            f"suggestion time: p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms "
            f"({len(ordered)} questions, model loaded)"
        )
    for text in result.missed:
        lines.append(f"missed urgent: {text}")
    return lines
