"""Named sizes of the end-to-end demo: ``default`` (the README's main command, under
15 minutes on 2 cores) and ``small`` (the CI test)."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class DemoPreset:
    name: str
    users: int                 # simulated shoppers
    items: int                 # catalog size
    days: int                  # days of history simulated, replayed through Kafka
    live_requests: int         # live ranking requests after the first model is served
    candidates: int            # candidates per request
    mean_gap_ms: float         # simulated time between live requests (moves event time forward)
    retrain_every_s: float     # wall seconds between scheduled retrains
    epochs: int                # epochs of each training
    ab: bool                   # A/B test: base model against the same base with USR
    base_model: str = "MMoE"
    usr_model: str = "MMoE+USR"
    freshness_every: int = 25  # probe feature freshness on every n-th live request
    seed: int = 0


PRESETS: dict[str, DemoPreset] = {
    "default": DemoPreset(name="default", users=4000, items=4000, days=5, live_requests=8000, candidates=100,
                          mean_gap_ms=30_000, retrain_every_s=60, epochs=2, ab=True),
    "small": DemoPreset(name="small", users=400, items=800, days=4, live_requests=400, candidates=50,
                        mean_gap_ms=300_000, retrain_every_s=6, epochs=2, ab=True, freshness_every=20),
}


def get_preset(name: str, **overrides) -> DemoPreset:
    if name not in PRESETS:
        raise KeyError(f"unknown demo preset {name!r} (known: {', '.join(PRESETS)})")
    preset = PRESETS[name]
    return replace(preset, **{k: v for k, v in overrides.items() if v is not None})
