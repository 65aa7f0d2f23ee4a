"""Open the stack's Feast feature store from the typed configuration.

The online store is SQLite under the run directory by default, Redis when
``feast.online_store: redis``; the registry and the offline store (Parquet)
live under the run directory too.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from usr.config import Config


def feast_dir(config: Config) -> Path:
    return config.run.dir / "feast"


def offline_dir(config: Config) -> Path:
    return config.run.dir / "offline"


def online_store_config(config: Config) -> dict[str, Any]:
    if config.feast.online_store == "redis":
        r = config.redis
        conn = f"{r.host}:{r.port}"
        if r.password_env:
            conn += f",password={os.environ.get(r.password_env, '')}"
        # skip_dedup: writes are upserts, last writer wins, as with SQLite. Feast's default
        # drops a write whose event timestamp is not newer than the stored one, which would
        # drop the stream's corrections (a late click changes a history without moving its
        # newest timestamp) and its re-writes after a restart.
        return {"type": "redis", "connection_string": conn, "skip_dedup": True}
    return {"type": "sqlite", "path": str(feast_dir(config) / "online.db")}


def repo_config(config: Config):
    from feast.repo_config import RepoConfig

    return RepoConfig(
        project=config.feast.project,
        provider="local",
        registry=str(feast_dir(config) / "registry.db"),
        online_store=online_store_config(config),
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
    )


def open_store(config: Config):
    from feast import FeatureStore

    feast_dir(config).mkdir(parents=True, exist_ok=True)
    offline_dir(config).mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(feast_dir(config)), config=repo_config(config))


def apply_definitions(config: Config):
    """Register every definition (idempotent) and return the store."""
    from features.definitions import build_definitions

    store = open_store(config)
    store.apply(list(build_definitions(offline_dir(config)).values()))
    return store


def probe_roundtrip(store, value: int | None = None) -> tuple[bool, str]:
    """Write one probe feature to the online store and read it back."""
    import pandas as pd

    value = int(time.time() * 1000) if value is None else value
    frame = pd.DataFrame({"probe_id": [1], "probe_value": [value],
                          "event_timestamp": [pd.Timestamp.now(tz="UTC")]})
    store.write_to_online_store("stack_probe", frame)
    got = store.get_online_features(features=["stack_probe:probe_value"],
                                    entity_rows=[{"probe_id": 1}]).to_dict()["probe_value"][0]
    return got == value, f"wrote {value}, read {got}"
