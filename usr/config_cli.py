"""``usr config``: print the effective configuration as YAML."""
from __future__ import annotations

import argparse

import yaml

from usr.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace, config: Config) -> int:
    del args
    print(yaml.safe_dump(config.dump(), sort_keys=False), end="")
    return 0
