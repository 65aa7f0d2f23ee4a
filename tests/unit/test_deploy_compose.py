"""docker-compose.yml and its monitoring files: generated from deploy/base/usr.yaml, and
referencing only images, commands, ports, volumes and configuration keys that exist.
Runs without Docker. The file is also loaded the way `docker compose config` loads it
(compose-spec schema, interpolation): with the docker compose plugin where it exists, else
with compose-go, the library docker compose is built on (deploy/tools/compose-validate,
built with Go from the module proxy); skipped only when neither can run."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.deploy_checks import check_command, image_kind, metric_names_in, project_metric_names, usr_env_config
from usr.config import PROJECT_ROOT, load_config
from usr.deploy import render

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
# Triton's own metrics (documented in Triton's metrics guide) that the dashboard reads
TRITON_METRICS = {"nv_inference_request_success", "nv_inference_queue_duration_us"}
LONG_RUNNING = {"kafka", "redis", "triton", "streams", "gateway", "retrain", "exporter", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def config():
    return render.load_production_config()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _secret_refs(value: str) -> list[str]:
    return re.findall(r"\$\{([A-Z0-9_]+)(?::[?-][^}]*)?\}", value)


def test_generated_files_are_up_to_date() -> None:
    # one place: every generated file equals what deploy/base/usr.yaml renders now
    assert render.stale() == [], "run `usr deploy render` after changing deploy/base/usr.yaml"


def test_production_config_validates_and_differs_from_local_defaults(config) -> None:
    assert config.kafka.mode == config.redis.mode == config.triton.mode == "external"
    assert config.feast.online_store == "redis" and config.gateway.host == "0.0.0.0"
    assert config.gateway.auth_token_env and config.redis.password_env


def test_services(compose, config) -> None:
    services = compose["services"]
    assert LONG_RUNNING | {"init"} == set(services)
    # service names are the configured host names: the config and compose cannot disagree
    assert {config.kafka.bootstrap.split(":")[0], config.redis.host, config.triton.host} <= set(services)
    for name, svc in services.items():
        if name in LONG_RUNNING:
            assert "healthcheck" in svc, f"{name} has no health check"
            assert svc.get("restart") == "unless-stopped"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no health check"
    assert services["init"]["restart"] == "no"
    for name in ("streams", "gateway", "retrain", "exporter"):
        assert services[name]["depends_on"]["init"] == {"condition": "service_completed_successfully"}


def test_images_are_pinned_official_or_built_here(compose, config) -> None:
    kinds = {}
    for name, svc in compose["services"].items():
        kind = image_kind(svc["image"])
        kinds[name] = kind
        if kind == "app":
            build = svc["build"]
            assert (PROJECT_ROOT / build["context"] / build["dockerfile"]).is_file()
        else:
            assert "build" not in svc
    assert kinds[config.kafka.host] == "kafka" and kinds[config.redis.host] == "redis"
    assert kinds[config.triton.host] == "triton"
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{config.kafka.version}"
    # the Dockerfile: python 3.11 slim, uv-pinned lock, non-root
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert "requirements/app.lock" in dockerfile and "uv pip sync" in dockerfile
    setup_uv = re.search(r"UV_VERSION=([\d.]+)", (PROJECT_ROOT / "scripts/setup.sh").read_text()).group(1)
    assert f"ARG UV_VERSION={setup_uv}" in dockerfile
    assert re.search(r"^USER usr$", dockerfile, re.M)
    for copied in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (PROJECT_ROOT / copied).exists(), f"Dockerfile copies missing {copied}"


def test_app_containers_read_the_one_config(compose, config) -> None:
    for name, svc in compose["services"].items():
        if image_kind(svc["image"]) != "app":
            continue
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        assert env["USR_CONFIG"] == render.CONFIG_IN_CONTAINER
        # the config the container sees validates (USR__ keys, if any, must be real keys)
        seen = usr_env_config(env)
        assert seen == config
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        assert mounts[render.CONFIG_IN_CONTAINER] == "./deploy/base/usr.yaml"
        # the run directory lives on the shared volume
        assert any(str(config.run.dir).startswith(target) and source == "usr-data"
                   for target, source in mounts.items())
        check_command(svc["command"])
        if "healthcheck" in svc:
            check_command(svc["healthcheck"]["test"][1:])


def test_secrets_are_references_named_by_the_config(compose, config) -> None:
    secret_names = {config.redis.password_env, config.gateway.auth_token_env, config.kafka.sasl_password_env}
    seen = set()
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if key in secret_names or "PASSWORD" in key or "TOKEN" in key:
                refs = _secret_refs(str(value))
                assert len(refs) == 1 and re.fullmatch(r"\$\{[^}]*\}", str(value)), \
                    f"{name}.{key} must be a ${{VAR}} reference, not a value"
                if key in secret_names:
                    assert refs == [key], f"{name}.{key}: the variable must keep the name the config gives"
                seen.add(refs[0])
    assert {config.redis.password_env, config.gateway.auth_token_env} <= seen
    gateway_env = compose["services"]["gateway"]["environment"]
    assert config.gateway.auth_token_env in gateway_env
    assert config.gateway.auth_token_env not in compose["services"]["streams"]["environment"]
    example = (PROJECT_ROOT / "deploy/compose/compose.env.example").read_text()
    for line in example.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert value == "", f"compose.env.example must not hold a value for {key}"
    for key in seen | {"GRAFANA_ADMIN_PASSWORD"}:
        assert re.search(rf"^{key}=$", example, re.M), f"{key} missing from compose.env.example"


def test_ports_match_the_config(compose, config) -> None:
    s = compose["services"]
    g, t, k = config.gateway, config.triton, config.kafka
    assert s["gateway"]["ports"] == [f"{g.port}:{g.port}"]
    assert s["gateway"]["expose"] == [str(g.metrics_port)]
    assert set(s[t.host]["expose"]) == {str(t.http_port), str(t.grpc_port), str(t.metrics_port)}
    assert set(s["kafka"]["expose"]) == {str(k.port), str(k.controller_port)}
    assert s[config.redis.host]["expose"] == [str(config.redis.port)]
    assert s["retrain"]["expose"] == [str(config.retrain.metrics_port)]
    env = s["kafka"]["environment"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{k.bootstrap}"
    assert f":{k.port}" in env["KAFKA_LISTENERS"] and f":{k.controller_port}" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_NUM_PARTITIONS"] == str(k.topics.partitions)
    args = dict(a.lstrip("-").split("=", 1) for a in s[t.host]["command"][1:])
    assert args["model-repository"] == str(t.model_repository)
    assert (args["grpc-port"], args["http-port"], args["metrics-port"]) == tuple(
        map(str, (t.grpc_port, t.http_port, t.metrics_port)))
    assert args["model-control-mode"] == "poll"
    assert f"--port {config.redis.port}" in s[config.redis.host]["command"][2]
    assert f":{t.http_port}/v2/health/ready" in s[t.host]["healthcheck"]["test"][1]


def test_volumes_exist(compose, config) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, svc in compose["services"].items():
        for v in svc.get("volumes") or []:
            source, target = v.split(":")[:2]
            if source.startswith("."):
                assert (PROJECT_ROOT / source).exists(), f"{name}: bind source {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared
    # Triton and the app containers see the model repository at the same, configured path
    repo = str(config.triton.model_repository)
    for name in (config.triton.host, "gateway", "retrain"):
        assert f"./triton_repo:{repo}" in {":".join(v.split(":")[:2]) for v in compose["services"][name]["volumes"]}
    assert "./triton_repo:/models:ro" in compose["services"][config.triton.host]["volumes"]
    assert not any(v.endswith(":ro") and "triton_repo" in v for v in compose["services"]["retrain"]["volumes"])


def test_stream_workers_and_retrainer(compose, config) -> None:
    s = compose["services"]
    assert s["streams"]["deploy"]["replicas"] == config.streams.workers == 2
    assert config.streams.workers <= config.kafka.topics.partitions
    assert s["retrain"]["command"][:4] == ["usr", "retrain", "--every", render.RETRAIN_EVERY]


def test_prometheus_scrapes_configured_ports(compose, config) -> None:
    prom = yaml.safe_load((PROJECT_ROOT / "deploy/compose/prometheus.yml").read_text())
    targets = {}
    for job in prom["scrape_configs"]:
        for sc in job.get("static_configs", []):
            targets[job["job_name"]] = sc["targets"][0]
        for sd in job.get("dns_sd_configs", []):
            targets[job["job_name"]] = f"{sd['names'][0]}:{sd['port']}"
    assert targets["gateway"] == f"gateway:{config.gateway.metrics_port}"
    assert targets["triton"] == f"{config.triton.host}:{config.triton.metrics_port}"
    assert targets["retrain"] == f"retrain:{config.retrain.metrics_port}"
    assert targets["exporter"] == f"exporter:{render.EXPORTER_PORT}"
    for job, target in targets.items():
        host = target.rsplit(":", 1)[0]
        assert host == "127.0.0.1" or host in compose["services"], f"{job}: no service {host}"


def test_grafana_dashboard_reads_metrics_that_exist(compose) -> None:
    base = PROJECT_ROOT / "deploy/compose/grafana"
    dashboard = json.loads((base / "dashboards/usr-stack.json").read_text())
    datasource = yaml.safe_load((base / "provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    provider = yaml.safe_load((base / "provisioning/dashboards/usr-stack.yml").read_text())["providers"][0]
    grafana_mounts = dict(v.split(":")[:2][::-1] for v in compose["services"]["grafana"]["volumes"])
    assert grafana_mounts[provider["options"]["path"]] == "./deploy/compose/grafana/dashboards"
    assert datasource["url"] == f"http://prometheus:{render.PROMETHEUS_PORT}"
    known = project_metric_names() | TRITON_METRICS
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for needed in ("latency", "freshness", "lag", "retrain"):
        assert needed in titles
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"]
        for target in panel["targets"]:
            names = metric_names_in(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']}"
            assert names <= known, f"{panel['title']}: unknown metrics {names - known}"


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0


VALIDATOR_SRC = PROJECT_ROOT / "deploy/tools/compose-validate"


def compose_loader() -> list[str]:
    """`docker compose config`, else compose-go (the library docker compose is built on) through
    deploy/tools/compose-validate, built once into .cache/; skips when neither can run."""
    if _docker_compose_available():
        return ["docker", "compose", "--project-directory", str(PROJECT_ROOT), "-f"]
    go = shutil.which("go")
    if go is None:
        pytest.skip("neither the docker compose plugin nor Go (for compose-go) is available")
    import hashlib

    digest = hashlib.sha256(b"".join((VALIDATOR_SRC / f).read_bytes() for f in ("go.mod", "go.sum", "main.go")))
    binary = PROJECT_ROOT / ".cache" / "compose-validate" / digest.hexdigest()[:16] / "compose-validate"
    if not binary.exists():
        built = subprocess.run([go, "build", "-o", str(binary), "."], cwd=VALIDATOR_SRC, capture_output=True,
                               text=True, timeout=600)
        if built.returncode != 0:
            if any(w in built.stderr for w in ("dial tcp", "proxy.golang.org", "no such host", "i/o timeout",
                                               "connection refused", "TLS handshake")):
                pytest.skip(f"compose-go cannot be downloaded here: {built.stderr.strip()[-300:]}")
            raise AssertionError(f"building compose-validate failed:\n{built.stderr}")
    return [str(binary)]


def _load_compose(env: dict[str, str]) -> subprocess.CompletedProcess:
    loader = compose_loader()
    cmd = [*loader, str(COMPOSE), "config", "--format", "json"] if loader[0] == "docker" else [*loader, str(COMPOSE)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=120)


def test_compose_loader_accepts_the_file() -> None:
    # the compose-spec schema, interpolation and normalisation, as `docker compose config` does them
    env = {**os.environ, "REDIS_PASSWORD": "x", "USR_GATEWAY_TOKEN": "x", "KAFKA_PASSWORD": "",
           "GRAFANA_ADMIN_PASSWORD": "x"}
    done = _load_compose(env)
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)
    assert set(resolved["services"]) == LONG_RUNNING | {"init"}
    gateway = resolved["services"]["gateway"]
    assert gateway["environment"]["USR_GATEWAY_TOKEN"] == "x"
    binds = {v["target"]: v["source"] for v in gateway["volumes"] if v["type"] == "bind"}
    assert binds[render.CONFIG_IN_CONTAINER] == str(render.CONFIG_FILE)
    assert resolved["services"]["streams"]["deploy"]["replicas"] == 2
    # without the secrets, compose refuses the file and names the variable
    env.pop("REDIS_PASSWORD")
    refused = _load_compose(env)
    assert refused.returncode != 0 and "REDIS_PASSWORD" in refused.stderr


def test_compose_loader_rejects_an_invalid_file(tmp_path: Path) -> None:
    # the check can fail: a misspelt key or a bad condition is refused by the schema
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE.read_text().replace("    hostname: kafka", "    hostnam: kafka"))
    loader = compose_loader()
    cmd = [*loader, str(bad), "config"] if loader[0] == "docker" else [*loader, str(bad)]
    env = {**os.environ, "REDIS_PASSWORD": "x", "USR_GATEWAY_TOKEN": "x", "GRAFANA_ADMIN_PASSWORD": "x"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode != 0 and "hostnam" in done.stderr


def test_a_port_change_in_the_config_moves_everything(tmp_path: Path) -> None:
    # one place: change the gateway port and the Triton host in usr.yaml, render into a copy
    data = yaml.safe_load(render.CONFIG_FILE.read_text())
    data["gateway"]["port"] = 9500
    data["triton"]["host"] = "inference"
    data["kafka"]["topics"]["impressions"] = "shop.impressions"
    changed = tmp_path / "usr.yaml"
    changed.write_text(yaml.safe_dump(data))
    cfg = load_config(changed, environ={})
    files = render.render_all(cfg)
    compose = yaml.safe_load(files[Path("docker-compose.yml")])
    assert compose["services"]["gateway"]["ports"] == ["9500:9500"]
    assert "inference" in compose["services"] and "triton" not in compose["services"]
    assert compose["services"]["gateway"]["depends_on"]["inference"]
    prom = files[Path("deploy/compose/prometheus.yml")]
    assert f"inference:{cfg.triton.metrics_port}" in prom
    gateway_k8s = list(yaml.safe_load_all(files[Path("deploy/base/gateway.yaml")]))
    svc = next(d for d in gateway_k8s if d["kind"] == "Service")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]}["grpc"] == 9500
    triton_k8s = list(yaml.safe_load_all(files[Path("deploy/base/triton.yaml")]))
    assert {d["metadata"]["name"] for d in triton_k8s} == {"inference"}


def test_compose_kafka_is_configured_like_the_local_stack_broker(compose, config, tmp_path: Path) -> None:
    # the compose broker and `usr stack up`'s broker: same roles, listeners, voters, replication
    from tests.unit.deploy_checks import kafka_image_properties
    from usr.stack.kafka_broker import _server_properties

    env = compose["services"]["kafka"]["environment"]
    image = kafka_image_properties(env)
    local = dict(line.split("=", 1) for line in _server_properties(config, tmp_path).splitlines() if line)
    for key in ("process.roles", "node.id", "controller.quorum.voters", "advertised.listeners",
                "controller.listener.names", "listener.security.protocol.map", "inter.broker.listener.name",
                "num.partitions", "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr", "share.coordinator.state.topic.replication.factor",
                "share.coordinator.state.topic.min.isr", "group.initial.rebalance.delay.ms"):
        assert image[key] == local[key], key
    assert image["listeners"] == local["listeners"].replace(f"//{config.kafka.host}:", "//:")
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
