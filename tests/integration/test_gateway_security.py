"""Gateway security over real gRPC: bearer-token authentication and TLS.

The gateway runs on real ports (``running_gateway``) with an in-memory catalog as its
feature source; nothing here needs Kafka or Triton (the gateway answers with its
fallback ranking when no model is published), so the stack is not started. The TLS
certificates (a test CA and a server certificate for localhost / 127.0.0.1) are made by
the test with the ``openssl`` command.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.auth import AuthConfigError
from gateway.client import RankingClient
from gateway.proto import pb, pb_grpc
from gateway.server import build_service
from tests.conftest import stack_config
from tests.integration.gateway_fixtures import gateway_config, running_gateway
from usr.config import Config

pytestmark = pytest.mark.integration

TOKEN_ENV = "USR_TEST_GATEWAY_TOKEN"
TOKEN = "s3cr3t-token-for-tests"
OLD_TOKEN = "previous-token-still-accepted"


class CatalogFeatures:
    """An in-memory feature source: one known user, a catalog where popularity = 1/id."""

    def user(self, user_id):
        return {"user_segment": 3, "user_level": 2} if user_id == 42 else {}

    def items(self, item_ids):
        return {int(i): {"cate1": 1, "cate2": 5, "brand": 7, "price_bucket": 1, "popularity": 1.0 / int(i)}
                for i in item_ids}


@pytest.fixture(scope="module")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    # a config of its own (free ports, empty model repository): nothing is started but the gateway
    return stack_config(tmp_path_factory.mktemp("gateway-security"))


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca_and_server_cert(directory: Path, name: str = "ca") -> dict[str, Path]:
    """A CA and a server certificate it signs, valid for DNS:localhost and IP:127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = f"{name}.key", f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", f"/CN=usr test CA {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=directory)
    (directory / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "server.ext", cwd=directory)
    return {"ca": directory / ca_crt, "cert": directory / "server.crt", "key": directory / "server.key"}


@pytest.fixture(scope="module")
def token_gateway(base_config: Config):
    """A plaintext gateway that requires a token (two accepted: rotation)."""
    mp = pytest.MonkeyPatch()
    mp.setenv(TOKEN_ENV, f"{TOKEN}, {OLD_TOKEN}")
    config = gateway_config(base_config, auth_token_env=TOKEN_ENV)
    service = build_service(config, features=CatalogFeatures())
    try:
        with running_gateway(config, service, log_impressions=False) as address:
            yield address
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_ca_and_server_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_gateway(base_config: Config, certs):
    """A TLS gateway (test CA) that also requires a token."""
    mp = pytest.MonkeyPatch()
    mp.setenv(TOKEN_ENV, TOKEN)
    config = gateway_config(base_config, auth_token_env=TOKEN_ENV, tls_cert=certs["cert"], tls_key=certs["key"])
    service = build_service(config, features=CatalogFeatures())
    try:
        with running_gateway(config, service, log_impressions=False) as address:
            yield address
    finally:
        mp.undo()


def _rank_code(address: str, **client_kwargs) -> grpc.StatusCode:
    with RankingClient(address, timeout_s=5, **client_kwargs) as client:
        try:
            client.rank(42, "rec", [3, 1, 2])
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


# ------------------------------------------------------------------ token

def test_call_without_token_is_unauthenticated(token_gateway: str) -> None:
    with RankingClient(token_gateway, timeout_s=5) as client:
        with pytest.raises(grpc.RpcError) as err:
            client.rank(42, "rec", [3, 1, 2])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in err.value.details()


@pytest.mark.parametrize("metadata", [
    (("authorization", "Bearer wrong-token"),),
    (("authorization", f"Bearer {TOKEN}x"),),
    (("authorization", f"Bearer {TOKEN[:-1]}"),),
    (("authorization", f"Basic {TOKEN}"),),             # not a bearer token
    (("authorization", TOKEN),),                         # no scheme
    (("authorization", "Bearer "),),
    (("x-api-key", TOKEN),),                             # right token, wrong header
])
def test_call_with_an_invalid_token_is_unauthenticated(token_gateway: str, metadata) -> None:
    with grpc.insecure_channel(token_gateway) as channel:
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.RankingStub(channel).Rank(pb.RankRequest(user_id=42, scenario="rec", candidates=[1, 2]),
                                              timeout=5, metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_unauthenticated_invalid_request_is_not_validated(token_gateway: str) -> None:
    # authentication comes first: an anonymous caller learns nothing about validation
    with grpc.insecure_channel(token_gateway) as channel:
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.RankingStub(channel).Rank(pb.RankRequest(user_id=-1, scenario="shop"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_call_with_a_valid_token_is_served(token_gateway: str) -> None:
    for token in (TOKEN, OLD_TOKEN):
        with RankingClient(token_gateway, timeout_s=5, token=token) as client:
            reply = client.rank(42, "rec", [3, 1, 2])
        # no model published: the popularity fallback (1/id) orders 1, 2, 3
        assert [i.item_id for i in reply.items] == [1, 2, 3]
        assert reply.fallback


def test_scheme_is_case_insensitive_and_validation_still_runs(token_gateway: str) -> None:
    metadata = (("authorization", f"bearer {TOKEN}"),)
    with grpc.insecure_channel(token_gateway) as channel:
        stub = pb_grpc.RankingStub(channel)
        reply = stub.Rank(pb.RankRequest(user_id=42, scenario="rec", candidates=[5, 4]), timeout=5, metadata=metadata)
        assert [i.item_id for i in reply.items] == [4, 5]
        with pytest.raises(grpc.RpcError) as err:
            stub.Rank(pb.RankRequest(user_id=42, scenario="shop", candidates=[1]), timeout=5, metadata=metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_is_open_and_reflection_needs_a_token(token_gateway: str) -> None:
    with grpc.insecure_channel(token_gateway) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as err:
            list(stub.ServerReflectionInfo(iter([request]), timeout=5))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answers = list(stub.ServerReflectionInfo(iter([request]), timeout=5,
                                                 metadata=(("authorization", f"Bearer {TOKEN}"),)))
    assert any(s.name == "grpc.health.v1.Health" for s in answers[0].list_services_response.service)


def test_configured_but_unset_token_variable_refuses_to_start(base_config: Config, monkeypatch) -> None:
    import asyncio

    from gateway.server import serve

    monkeypatch.delenv("USR_TEST_UNSET_TOKEN", raising=False)
    config = gateway_config(base_config, auth_token_env="USR_TEST_UNSET_TOKEN")
    service = build_service(config, features=CatalogFeatures())
    with pytest.raises(AuthConfigError, match="USR_TEST_UNSET_TOKEN"):
        asyncio.run(serve(config, service, log_impressions=False))


# ------------------------------------------------------------------ TLS

def test_tls_with_the_test_ca_and_token(tls_gateway: str, certs) -> None:
    root = certs["ca"].read_bytes()
    with RankingClient(tls_gateway, timeout_s=5, token=TOKEN, root_cert=root) as client:
        reply = client.rank(42, "rec", [3, 1, 2])
    assert [i.item_id for i in reply.items] == [1, 2, 3]
    # over TLS the token is still required
    assert _rank_code(tls_gateway, root_cert=root) == grpc.StatusCode.UNAUTHENTICATED
    assert _rank_code(tls_gateway, root_cert=root, token="wrong") == grpc.StatusCode.UNAUTHENTICATED


def test_tls_by_host_name(tls_gateway: str, certs) -> None:
    port = tls_gateway.rsplit(":", 1)[1]
    with RankingClient(f"localhost:{port}", timeout_s=5, token=TOKEN, root_cert=certs["ca"].read_bytes()) as client:
        assert len(client.rank(42, "rec", [7, 8]).items) == 2


def test_plaintext_client_cannot_talk_to_the_tls_port(tls_gateway: str) -> None:
    assert _rank_code(tls_gateway, token=TOKEN) == grpc.StatusCode.UNAVAILABLE


def test_client_trusting_another_ca_is_refused(tls_gateway: str, tmp_path: Path) -> None:
    other = make_ca_and_server_cert(tmp_path / "other", name="other-ca")
    assert _rank_code(tls_gateway, token=TOKEN, root_cert=other["ca"].read_bytes()) == grpc.StatusCode.UNAVAILABLE


def test_health_over_tls_without_token(tls_gateway: str, certs) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=certs["ca"].read_bytes())
    with grpc.secure_channel(tls_gateway, creds) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# ------------------------------------------------------------------ the container health probe

def test_container_probe_checks_health_over_tls_without_token(base_config: Config, certs) -> None:
    # `usr deploy probe gateway` (compose health check, Kubernetes readiness): TLS from the
    # config's files, the CA beside the certificate, the certificate's name for verification
    from usr.deploy.probe import certificate_names, gateway

    assert certificate_names(certs["cert"]) == ["localhost", "127.0.0.1"]
    mp = pytest.MonkeyPatch()
    mp.setenv(TOKEN_ENV, TOKEN)
    config = gateway_config(base_config, host="0.0.0.0", auth_token_env=TOKEN_ENV, tls_cert=certs["cert"],
                            tls_key=certs["key"])
    try:
        with running_gateway(config, build_service(config, features=CatalogFeatures()), log_impressions=False):
            ok, detail = gateway(config)
            assert ok, detail
            plain = config.model_copy(update={"gateway": config.gateway.model_copy(
                update={"tls_cert": None, "tls_key": None})})
            ok, detail = gateway(plain)       # a plaintext probe of a TLS port fails
            assert not ok and "UNAVAILABLE" in detail
    finally:
        mp.undo()
    ok, detail = gateway(config, timeout_s=1.0)  # stopped: unhealthy
    assert not ok
