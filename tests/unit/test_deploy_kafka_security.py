"""Kafka SASL/TLS and Redis password settings pass from the configuration to the clients."""
from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from usr.config import ConfigError, load_config
from usr.kafka_client import aiokafka_kwargs, client_kwargs


def _ca(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test CA")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=usr kafka test CA"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=60)
    return tmp_path / "ca.crt"


def _config(**env: str):
    return load_config(environ={f"USR__KAFKA__{k.upper()}": v for k, v in env.items()})


def test_plaintext_has_no_security_arguments() -> None:
    kw = client_kwargs(_config().kafka)
    assert kw["security_protocol"] == "PLAINTEXT" and not any(k.startswith(("ssl", "sasl")) for k in kw)
    assert "ssl_context" not in aiokafka_kwargs(_config().kafka)


def test_sasl_ssl_with_a_private_ca(tmp_path: Path, monkeypatch) -> None:
    ca = _ca(tmp_path)
    monkeypatch.setenv("KAFKA_TEST_PASSWORD", "pw")
    config = _config(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="usr",
                     sasl_password_env="KAFKA_TEST_PASSWORD", ssl_cafile=str(ca), bootstrap_servers="k1:9093,k2:9093")
    kw = client_kwargs(config.kafka)
    assert kw["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("SCRAM-SHA-512", "usr", "pw")
    assert kw["ssl_cafile"] == str(ca) and kw["ssl_check_hostname"] is True
    akw = aiokafka_kwargs(config.kafka)
    assert akw["sasl_plain_password"] == "pw" and akw["bootstrap_servers"] == "k1:9093,k2:9093"
    context = akw["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "usr kafka test CA"),),)]
    # the clients accept these arguments
    from aiokafka import AIOKafkaProducer
    from kafka import KafkaProducer

    assert set(kw) - {"bootstrap_servers"} <= set(KafkaProducer.DEFAULT_CONFIG)
    async def construct() -> None:
        producer = AIOKafkaProducer(**akw)  # validates its arguments without connecting
        await producer.stop()

    import asyncio

    asyncio.run(construct())


@pytest.mark.parametrize("env,key", [
    ({"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.crt"}, "kafka.ssl_cafile"),
    ({"security_protocol": "SSL", "ssl_certfile": "/x.crt"}, "kafka.ssl_certfile"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "kafka.sasl_mechanism"),
])
def test_incomplete_security_settings_name_the_key(env, key) -> None:
    with pytest.raises(ConfigError) as err:
        client_kwargs(_config(**env).kafka)
    assert err.value.key == key


def test_unset_password_variable_is_an_error(monkeypatch) -> None:
    monkeypatch.delenv("KAFKA_TEST_UNSET", raising=False)
    config = _config(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
                     sasl_password_env="KAFKA_TEST_UNSET")
    with pytest.raises(ConfigError, match="KAFKA_TEST_UNSET"):
        client_kwargs(config.kafka)


def test_redis_password_reaches_the_feast_online_store(monkeypatch) -> None:
    from features.store import online_store_config

    monkeypatch.setenv("REDIS_TEST_PASSWORD", "s3cr3t")
    config = load_config(environ={"USR__FEAST__ONLINE_STORE": "redis", "USR__REDIS__HOST": "redis.internal",
                                  "USR__REDIS__PORT": "6380", "USR__REDIS__PASSWORD_ENV": "REDIS_TEST_PASSWORD"})
    store = online_store_config(config)
    assert store["type"] == "redis" and store["connection_string"] == "redis.internal:6380,password=s3cr3t"
