"""Shared checks of the deployment files (tests/unit/test_deploy_*.py): images, commands
and configuration keys must be ones the project really has."""
from __future__ import annotations

import importlib.util
import re
import shlex

from usr.config import ENV_PREFIX, Config, load_config
from usr.deploy import render

# official images, pinned (never :latest, never a floating major)
OFFICIAL_IMAGES = {
    "kafka": re.compile(r"^apache/kafka:4\.\d+\.\d+$"),
    "redis": re.compile(r"^redis:7\.\d+\.\d+$"),
    "triton": re.compile(r"^nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3$"),
    "prometheus": re.compile(r"^prom/prometheus:v\d+\.\d+\.\d+$"),
    "grafana": re.compile(r"^grafana/grafana:\d+\.\d+\.\d+$"),
}


def image_kind(image: str, app_names: tuple[str, ...] = ("usr-stack",)) -> str:
    """'app' for the project's image (built from ./Dockerfile), else the official kind; fails otherwise."""
    name, _, tag = image.rpartition(":")
    if name in app_names:
        assert tag == render.project_version(), f"{image}: the project's image must carry the project version"
        return "app"
    for kind, pattern in OFFICIAL_IMAGES.items():
        if pattern.match(image):
            return kind
    raise AssertionError(f"image {image!r} is neither the project's nor a pinned official image")


def usr_env_config(env: dict[str, str], config_file=render.CONFIG_FILE) -> Config:
    """The configuration a container sees: the mounted file plus its USR__ variables.
    Every USR__ variable must be a real key: load_config rejects unknown ones by name."""
    usr_env = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    return load_config(config_file, environ=usr_env)


def check_command(argv: list[str], config_path: str = render.CONFIG_IN_CONTAINER) -> None:
    """A container command must run something the project has, with arguments it accepts."""
    from usr.cli import COMMANDS, build_parser

    assert argv, "empty command"
    if argv[:2] == ["python", "-m"]:
        module = argv[2]
        assert importlib.util.find_spec(module) is not None, f"module {module} does not exist"
        if "--config" in argv:
            assert argv[argv.index("--config") + 1] == config_path
        return
    if argv[0] == "usr":
        assert argv[1] in COMMANDS, f"`usr {argv[1]}` is not a command of usr/cli.py"
        args = build_parser([argv[1]]).parse_args(argv[1:])
        assert not getattr(args, "_missing", None), f"`{shlex.join(argv)}`: {args._missing}"
        return
    if argv[0] == "tritonserver":
        return
    raise AssertionError(f"unexpected command {argv}")


def metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:usr|nv)_[a-z0-9_]+)\b", expr))


def project_metric_names() -> set[str]:
    """Every sample name the project's Prometheus registries can export."""
    from gateway import metrics as gateway_metrics
    from model import retrain_metrics
    from usr.deploy.exporter import Exporter

    names: set[str] = set()
    for registry in (gateway_metrics.REGISTRY, retrain_metrics.REGISTRY):
        for collector_names in registry._collector_to_names.values():  # noqa: SLF001 - includes unlabelled children
            names.update(collector_names)
    exporter = Exporter(load_config(environ={}))
    for family in exporter.registry.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
    for collector_names in exporter.registry._collector_to_names.values():  # noqa: SLF001
        names.update(collector_names)
    return names


# env vars of the apache/kafka image that are JVM options, not server properties
KAFKA_IMAGE_JVM_ENV = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_LOG4J_OPTS",
                       "KAFKA_JMX_OPTS", "KAFKA_GC_LOG_OPTS"}


def kafka_image_properties(env: dict[str, str]) -> dict[str, str]:
    """The server properties the apache/kafka image derives from KAFKA_* variables:
    strip KAFKA_, lower case, '___' -> '-', '__' -> '_', '_' -> '.'."""
    props = {}
    for key, value in env.items():
        if not key.startswith("KAFKA_") or key in KAFKA_IMAGE_JVM_ENV:
            continue
        name = key[len("KAFKA_"):].lower().replace("___", "\0").replace("__", "\1").replace("_", ".")
        props[name.replace("\0", "-").replace("\1", "_")] = str(value)
    return props
