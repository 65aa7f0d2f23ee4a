"""Kafka client settings and admin operations shared by every part of the stack.

All clients (producers, consumers, admin, Faust) take their connection and
security settings from ``config.kafka`` through :func:`client_kwargs`, so a
switch to an external, SASL/TLS-protected cluster is one configuration change.
"""
from __future__ import annotations

import os
from typing import Any

from usr.config import ConfigError, KafkaConfig


def client_kwargs(kafka: KafkaConfig) -> dict[str, Any]:
    """kafka-python keyword arguments for connection and security."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap.split(","),
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol.startswith("SASL"):
        if not kafka.sasl_mechanism or not kafka.sasl_username or not kafka.sasl_password_env:
            raise ConfigError("kafka.sasl_mechanism", "SASL needs sasl_mechanism, sasl_username and sasl_password_env")
        password = os.environ.get(kafka.sasl_password_env)
        if password is None:
            raise ConfigError("kafka.sasl_password_env", f"environment variable {kafka.sasl_password_env} is not set")
        kwargs.update(sasl_mechanism=kafka.sasl_mechanism, sasl_plain_username=kafka.sasl_username,
                      sasl_plain_password=password)
    kwargs.update(_ssl_files(kafka))
    return kwargs


def _ssl_files(kafka: KafkaConfig) -> dict[str, Any]:
    """kafka-python's TLS arguments (only with SSL / SASL_SSL); files must exist."""
    if not kafka.security_protocol.endswith("SSL"):
        return {}
    if (kafka.ssl_certfile is None) != (kafka.ssl_keyfile is None):
        raise ConfigError("kafka.ssl_certfile", "mutual TLS needs both ssl_certfile and ssl_keyfile")
    out: dict[str, Any] = {"ssl_check_hostname": kafka.ssl_check_hostname}
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(kafka, key)
        if path is None:
            continue
        if not os.path.isfile(path):
            raise ConfigError(f"kafka.{key}", f"file not found: {path}")
        out[key] = str(path)
    return out


def aiokafka_kwargs(kafka: KafkaConfig) -> dict[str, Any]:
    """The same connection and security settings for aiokafka (producers/consumers of the
    gateway and the stream workers): aiokafka takes TLS as an ``ssl_context``."""
    kw = client_kwargs(kafka)
    out: dict[str, Any] = {"bootstrap_servers": kafka.bootstrap, "security_protocol": kw["security_protocol"]}
    for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        if key in kw:
            out[key] = kw[key]
    if kafka.security_protocol.endswith("SSL"):
        from aiokafka.helpers import create_ssl_context

        context = create_ssl_context(cafile=kw.get("ssl_cafile"), certfile=kw.get("ssl_certfile"),
                                     keyfile=kw.get("ssl_keyfile"))
        context.check_hostname = kafka.ssl_check_hostname
        out["ssl_context"] = context
    return out


def topic_names(kafka: KafkaConfig) -> list[str]:
    t = kafka.topics
    return [t.impressions, t.clicks, t.orders, t.dead_letter]


def ensure_topics(kafka: KafkaConfig, timeout_s: float = 10.0) -> list[str]:
    """Create the stack's topics if missing; return the names that were created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(request_timeout_ms=int(timeout_s * 1000), **client_kwargs(kafka))
    try:
        existing = set(admin.list_topics())
        missing = [n for n in topic_names(kafka) if n not in existing]
        if missing:
            try:
                admin.create_topics([NewTopic(n, kafka.topics.partitions, 1) for n in missing])
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        admin.close()


def broker_answers(kafka: KafkaConfig, timeout_s: float = 3.0) -> tuple[bool, str]:
    """Does a broker answer a metadata request? (ok, detail)"""
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(request_timeout_ms=int(timeout_s * 1000), **client_kwargs(kafka))
    except Exception as exc:  # noqa: BLE001 - any failure means "does not answer"
        return False, f"{type(exc).__name__}: {exc}"
    try:
        topics = admin.list_topics()
        return True, f"{len(topics)} topics"
    except Exception as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        admin.close()
