"""Dead letters: rejected messages with the reason, on the dead-letter topic.

Key: ``<topic>:<partition>:<offset>`` of the rejected message (so a reader can drop
the repeats an at-least-once restart may produce). Value (JSON):
``{"reason", "field", "topic", "partition", "offset", "payload", "payload_encoding",
"worker", "detected_at_ms"}``; ``payload`` is the original message as text (UTF-8) or
base64 when it is not valid UTF-8.
"""
from __future__ import annotations

import base64
import json
import time
from typing import Any

from streams.state import DeadLetter


def dead_letter_message(dl: DeadLetter, topic: str, partition: int, worker: str) -> tuple[bytes, bytes]:
    """(key, value) of the dead-letter record for one rejected message."""
    try:
        payload, encoding = dl.payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(dl.payload).decode("ascii"), "base64"
    value = {
        "reason": dl.reason, "field": dl.field, "topic": topic, "partition": partition, "offset": dl.offset,
        "payload": payload, "payload_encoding": encoding, "worker": worker,
        "detected_at_ms": int(time.time() * 1000),
    }
    return f"{topic}:{partition}:{dl.offset}".encode(), json.dumps(value).encode()


def parse_dead_letter(value: bytes) -> dict[str, Any]:
    return json.loads(value)
