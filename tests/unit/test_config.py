from __future__ import annotations

import pytest

from usr.cli import main
from usr.config import ConfigError, env_overrides, load_config


def test_defaults_are_valid() -> None:
    cfg = load_config(environ={})
    assert cfg.kafka.mode == "apache" and cfg.feast.online_store == "sqlite"
    assert cfg.kafka.bootstrap == f"127.0.0.1:{cfg.kafka.port}"


def test_file_then_env_override(tmp_path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("kafka:\n  port: 29092\n  topics:\n    partitions: 8\nfeast:\n  online_store: redis\n")
    cfg = load_config(f, environ={"USR__KAFKA__PORT": "39092"})
    assert cfg.kafka.port == 39092 and cfg.kafka.topics.partitions == 8 and cfg.feast.online_store == "redis"


@pytest.mark.parametrize("yaml_text,key", [
    ("kafka:\n  prot: 1\n", "kafka.prot"),
    ("kafak:\n  port: 1\n", "kafak"),
    ("kafka:\n  topics:\n    partitions: 0\n", "kafka.topics.partitions"),
    ("feast:\n  online_store: cassandra\n", "feast.online_store"),
    ("triton:\n  grpc_port: 70000\n", "triton.grpc_port"),
])
def test_bad_file_names_the_key(tmp_path, yaml_text: str, key: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(f, environ={})
    assert err.value.key == key and key in str(err.value)


def test_bad_env_override_names_the_key() -> None:
    with pytest.raises(ConfigError, match="redis.port"):
        load_config(environ={"USR__REDIS__PORT": "not-a-port"})
    with pytest.raises(ConfigError, match="run.colour"):
        load_config(environ={"USR__RUN__COLOUR": "blue"})


def test_env_override_tree() -> None:
    assert env_overrides({"USR__KAFKA__TOPICS__PARTITIONS": "3", "OTHER": "x"}) == {"kafka": {"topics": {"partitions": 3}}}


def test_cli_exits_2_with_the_key(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("USR__TRITON__MODE", "remote")
    assert main(["config"]) == 2
    assert "triton.mode" in capsys.readouterr().err
