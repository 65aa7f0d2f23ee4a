"""``usr rollback``: serve the previous version again (the serving version's parent)."""
from __future__ import annotations

import argparse
import json
import sys

from usr.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace, config: Config) -> int:
    from model.retrain import rollback

    try:
        current, target = rollback(config)
    except RuntimeError as exc:
        print(f"usr rollback: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"from_version": current, "to_version": target}))
    return 0
