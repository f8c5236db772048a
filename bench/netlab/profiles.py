"""The lab's links, named after what clinics have. Rates are each way; the round trip
(RTT) is split evenly between the two directions; jitter is ± around each one-way delay.

The cuts run on `rural-dsl` and drop everything, both ways, on the media path (the
patient's TURN traffic) for N seconds; the signaling connection stays up, as it does
when a mobile link stalls on UDP while TCP recovers (see docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.netlab.relay import Impairment


@dataclass(frozen=True)
class Profile:
    name: str
    rate_kbps: float
    rtt_ms: float
    loss: float
    jitter_ms: float = 0.0
    cut_s: float = 0.0
    burst_every_s: float = 0.0
    burst_ms: float = 0.0

    def impairment(self) -> Impairment:
        return Impairment(
            rate_kbps=self.rate_kbps,
            delay_ms=self.rtt_ms / 2,
            jitter_ms=self.jitter_ms,
            loss=self.loss,
            burst_every_s=self.burst_every_s,
            burst_ms=self.burst_ms,
        )

    def describe(self) -> str:
        rate = (
            f"{self.rate_kbps / 1000:g} Mbps"
            if self.rate_kbps >= 1000
            else f"{self.rate_kbps:g} kbps"
        )
        text = f"{rate}, {self.rtt_ms:g} ms RTT, {self.loss * 100:g} % loss, ±{self.jitter_ms:g} ms"
        if self.cut_s:
            text += f", cut {self.cut_s:g} s"
        return text


_DSL = {"rate_kbps": 1000.0, "rtt_ms": 60.0, "loss": 0.01, "jitter_ms": 5.0}

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("good", rate_kbps=10_000, rtt_ms=30, loss=0.0, jitter_ms=2),
        Profile("rural-dsl", **_DSL),
        Profile("mobile-weak", rate_kbps=300, rtt_ms=150, loss=0.03, jitter_ms=20),
        Profile("edge", rate_kbps=64, rtt_ms=300, loss=0.05, jitter_ms=40),
        Profile("cut-10s", cut_s=10, **_DSL),
        Profile("cut-30s", cut_s=30, **_DSL),
        Profile("cut-90s", cut_s=90, **_DSL),
    )
}
