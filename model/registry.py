"""The model registry: one JSON record per candidate version (version, parent, data
window, metrics, decision), the checkpoints of promoted versions, and an event log
of promotions and rollbacks.

    <registry>/versions/<version>.json
    <registry>/checkpoints/<version>.pt
    <registry>/events.jsonl
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class VersionRecord:
    version: int
    parent: int | None
    model: str
    decision: str                      # promoted | rejected | failed
    reason: str
    data_window: dict[str, Any] = field(default_factory=dict)   # ts range, rows, watermark
    metrics: dict[str, Any] = field(default_factory=dict)       # candidate / serving on the holdout
    created_at: float = field(default_factory=time.time)
    train_seconds: float = 0.0

    @property
    def watermark_ts(self) -> int | None:
        return self.data_window.get("watermark_ts")


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "versions").mkdir(parents=True, exist_ok=True)
        (self.root / "checkpoints").mkdir(parents=True, exist_ok=True)

    def record_path(self, version: int) -> Path:
        return self.root / "versions" / f"{version}.json"

    def checkpoint_path(self, version: int) -> Path:
        return self.root / "checkpoints" / f"{version}.pt"

    def write(self, record: VersionRecord) -> None:
        tmp = self.record_path(record.version).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2, default=float))
        tmp.replace(self.record_path(record.version))

    def get(self, version: int) -> VersionRecord | None:
        try:
            return VersionRecord(**json.loads(self.record_path(version).read_text()))
        except FileNotFoundError:
            return None

    def records(self) -> list[VersionRecord]:
        found = [self.get(int(p.stem)) for p in (self.root / "versions").glob("*.json")]
        return sorted((r for r in found if r is not None), key=lambda r: r.version)

    def next_version(self, floor: int = 0) -> int:
        return max([r.version for r in self.records()] + [floor]) + 1

    def save_checkpoint(self, version: int, checkpoint: Path) -> Path:
        dst = self.checkpoint_path(version)
        shutil.copyfile(checkpoint, dst)
        return dst

    def log_event(self, **event: Any) -> None:
        with open(self.root / "events.jsonl", "a") as fh:
            fh.write(json.dumps({"at": time.time(), **event}, default=float) + "\n")

    def events(self) -> list[dict[str, Any]]:
        path = self.root / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def prune(self, keep: int, protect: set[int]) -> list[int]:
        """Drop checkpoints of promoted versions beyond the newest ``keep`` (never ``protect``)."""
        promoted = [r.version for r in self.records() if r.decision == "promoted"]
        drop = [v for v in promoted[:-keep] if v not in protect] if len(promoted) > keep else []
        for v in drop:
            self.checkpoint_path(v).unlink(missing_ok=True)
        return drop
