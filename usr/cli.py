"""The single command-line entry point: ``usr <command> ...``.

Each command lives in its own module exposing ``add_arguments(parser)`` and
``run(args, config) -> int``; modules are imported only when their command runs,
so ``usr stack status`` does not pay for importing torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from usr.config import ConfigError, load_config

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("usr.demo_cli", "the end-to-end demo: simulate, stream, train, serve, live A/B traffic, retrain, report"),
    "stack": ("usr.stack.cli", "start, check and stop the local services (up|status|down|logs)"),
    "config": ("usr.config_cli", "print the effective configuration after file and env overrides"),
    "simulate": ("usr.data.simulate_cli", "simulate a shop and write an event log + impression table"),
    "replay": ("usr.data.replay_cli", "publish an event log to Kafka in time order"),
    "streams": ("streams.cli", "stream jobs: load-catalog, publish, watermark, status, offline reference, worker"),
    "load": ("usr.data.load_cli", "turn a real log (jdsearch|aliexpress|kuaisar|generic) into an impression table"),
    "experiment": ("model.experiment_cli", "offline experiment: each base model with and without USR"),
    "train": ("model.train_cli", "train one model variant on an impression table"),
    "retrain": ("model.retrain_cli", "incremental retraining with a validation gate (once, or --every 1h)"),
    "rollback": ("model.rollback_cli", "serve the previous model version again"),
    "rank": ("gateway.rank_cli", "ask the ranking gateway to rank candidates for a user"),
    "deploy": ("usr.deploy.cli", "production deployment: render compose/Kubernetes from the config, init, probes, exporter"),
}


def _module_for(name: str):
    module_name, _ = COMMANDS[name]
    return importlib.import_module(module_name)


def build_parser(with_commands: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usr", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML config file (default: $USR_CONFIG or embedded defaults)")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if with_commands is None or name in with_commands:
            try:
                _module_for(name).add_arguments(p)
            except ModuleNotFoundError as exc:
                if not exc.name or not exc.name.startswith(COMMANDS[name][0].split(".")[0]):
                    raise
                p.set_defaults(_missing=f"command '{name}' is not available in this build ({exc.name})")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # only wire up the chosen command's arguments: keeps start-up cheap
    chosen = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser([chosen] if chosen else [])
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"usr: {args._missing}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"usr: {exc}", file=sys.stderr)
        return 2
    return int(_module_for(args.command).run(args, config) or 0)


if __name__ == "__main__":
    sys.exit(main())
