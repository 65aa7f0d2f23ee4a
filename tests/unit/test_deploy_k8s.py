"""Kubernetes manifests (deploy/base + deploy/overlays/production): rendered with the
project's pure-Python kustomize (always) and compared with the real kustomize where
`kubectl kustomize` or `kustomize` is installed; the rendered resources must reference
only images, ports, volumes, ConfigMaps, Secrets and configuration keys that exist."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.deploy_checks import check_command, image_kind, usr_env_config
from usr.config import PROJECT_ROOT, Config
from usr.deploy import kustomize, render

DEPLOY = PROJECT_ROOT / "deploy"
TARGETS = {"base": DEPLOY / "base", "production": DEPLOY / "overlays" / "production"}
OUT_OF_BAND_SECRETS = {render.SECRET_NAME, render.KAFKA_TLS_SECRET, render.GATEWAY_TLS_SECRET}


def _real_kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        probe = subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return ["kubectl", "kustomize"]
    return None


@pytest.fixture(scope="module", params=sorted(TARGETS))
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, kustomize.build(TARGETS[request.param])


def _by_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _pod_specs(resources: list[dict]) -> dict[str, dict]:
    out = {}
    for r in resources:
        if r["kind"] == "Deployment":
            out[r["metadata"]["name"]] = r["spec"]["template"]["spec"]
        elif r["kind"] == "CronJob":
            out[r["metadata"]["name"]] = r["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return out


def _configmap(resources: list[dict], prefix: str) -> dict:
    found = [r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith(prefix + "-")]
    assert len(found) == 1, f"one ConfigMap {prefix}-<hash> expected"
    return found[0]


def effective_config(resources: list[dict]) -> Config:
    """What every application container loads: the usr-config file + the usr-env overrides."""
    config_file = _configmap(resources, "usr-config")["data"][render.CONFIG_KEY]
    env = _configmap(resources, "usr-env")["data"]
    assert env["USR_CONFIG"] == render.CONFIG_IN_CONTAINER
    tmp = PROJECT_ROOT / ".cache" / "deploy-test" / "usr.yaml"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(config_file)
    return usr_env_config(env, tmp)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_real_kustomize_renders_the_same(target: str) -> None:
    tool = _real_kustomize()
    if tool is None:
        pytest.skip("neither kustomize nor kubectl is installed (the built-in renderer is checked below)")
    done = subprocess.run([*tool, str(TARGETS[target])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    real = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert kustomize.index(real) == kustomize.index(kustomize.build(TARGETS[target]))


def test_base_holds_the_one_config_file(rendered) -> None:
    _, resources = rendered
    assert _configmap(resources, "usr-config")["data"][render.CONFIG_KEY] == render.CONFIG_FILE.read_text()


def test_overrides_are_real_config_keys(rendered) -> None:
    name, resources = rendered
    config = effective_config(resources)      # raises ConfigError naming any unknown key or bad value
    base = render.load_production_config()
    if name == "base":
        assert config == base
    else:
        assert config.kafka.security_protocol == "SASL_SSL" and config.kafka.bootstrap != base.kafka.bootstrap
        assert config.gateway.tls_cert and config.gateway.tls_key
        assert config.kafka.topics.partitions >= config.streams.workers


def test_images(rendered) -> None:
    name, resources = rendered
    app_names = ("usr-stack", "registry.example.com/usr/usr-stack")
    kinds = set()
    for pod in _pod_specs(resources).values():
        for c in pod.get("initContainers", []) + pod["containers"]:
            kinds.add(image_kind(c["image"], app_names))
    assert kinds == {"app", "triton"}
    for r in resources:
        assert r["kind"] != "Secret", "no Secret objects (values) in the repository"


def test_commands_exist(rendered) -> None:
    _, resources = rendered
    for pod in _pod_specs(resources).values():
        for c in pod.get("initContainers", []) + pod["containers"]:
            check_command(c["command"] + c.get("args", []))
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if "exec" in c.get(probe, {}):
                    check_command(c[probe]["exec"]["command"])


def test_ports_match_the_config(rendered) -> None:
    _, resources = rendered
    config = effective_config(resources)
    g, t = config.gateway, config.triton
    services = _by_kind(resources, "Service")
    assert {p["name"]: p["port"] for p in services["usr-gateway"]["spec"]["ports"]} == {
        "grpc": g.port, "metrics": g.metrics_port}
    # the Triton Service is named by triton.host: the gateway's configured address resolves to it
    assert {p["name"]: p["port"] for p in services[t.host]["spec"]["ports"]} == {
        "http": t.http_port, "grpc": t.grpc_port, "metrics": t.metrics_port}
    pods = _pod_specs(resources)
    gw = pods["usr-gateway"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in gw["ports"]} == {"grpc": g.port, "metrics": g.metrics_port}
    triton = pods[t.host]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == {
        "http": t.http_port, "grpc": t.grpc_port, "metrics": t.metrics_port}
    args = dict(a.lstrip("-").split("=", 1) for a in triton["args"])
    assert (args["grpc-port"], args["http-port"], args["metrics-port"]) == tuple(
        map(str, (t.grpc_port, t.http_port, t.metrics_port)))
    assert args["model-repository"] == str(t.model_repository) and args["model-control-mode"] == "poll"
    # every Service targets named ports that its pods declare
    deployments = _by_kind(resources, "Deployment")
    for name, svc in services.items():
        pod = next(d for d in deployments.values()
                   if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items())
        declared = {p["name"] for c in pod["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= declared, name
    for name, pod in pods.items():
        for c in pod["containers"]:
            declared = {p["name"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = (c.get(probe, {}).get("httpGet") or c.get(probe, {}).get("tcpSocket") or {}).get("port")
                if isinstance(port, str):
                    assert port in declared, f"{name}.{c['name']}.{probe} uses undeclared port {port}"


def test_volumes_configmaps_and_secrets_exist(rendered) -> None:
    _, resources = rendered
    config = effective_config(resources)
    configmaps = set(_by_kind(resources, "ConfigMap"))
    claims = set(_by_kind(resources, "PersistentVolumeClaim"))
    for name, pod in _pod_specs(resources).items():
        volumes = {v["name"]: v for v in pod["volumes"]}
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps, f"{name}: unknown ConfigMap {v['configMap']['name']}"
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in claims
            if "secret" in v:
                assert v["secret"]["secretName"] in OUT_OF_BAND_SECRETS
        for c in pod.get("initContainers", []) + pod["containers"]:
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            for m in mounts.values():
                assert m["name"] in volumes, f"{name}.{c['name']}: mount of unknown volume {m['name']}"
            for e in c.get("envFrom", []):
                assert e["configMapRef"]["name"] in configmaps
            for e in c.get("env", []):
                ref = e["valueFrom"]["secretKeyRef"]
                assert "value" not in e, "secrets only by reference"
                assert ref["name"] == render.SECRET_NAME and ref["key"] in render.SECRET_KEYS.values()
            if c["image"].rsplit(":", 1)[0].endswith("usr-stack"):
                assert mounts[render.CONFIG_IN_CONTAINER]["subPath"] == render.CONFIG_KEY
                env_names = {e["name"] for e in c.get("env", [])}
                if name == "usr-gateway" and c["name"] == "gateway":
                    assert config.gateway.auth_token_env in env_names
                    # the TLS files the config names lie on the mounted TLS Secret
                    for path in (config.gateway.tls_cert, config.gateway.tls_key):
                        if path is not None:
                            assert str(path).startswith(render.GATEWAY_TLS_DIR + "/")
                            assert render.GATEWAY_TLS_DIR in mounts
                else:
                    assert config.gateway.auth_token_env not in env_names, "only the gateway gets the token"
                if config.feast.online_store == "redis" and name != "usr-exporter":
                    assert config.redis.password_env in env_names
                if config.kafka.ssl_cafile is not None:
                    assert str(config.kafka.ssl_cafile).startswith(render.KAFKA_TLS_DIR + "/")
                    assert render.KAFKA_TLS_DIR in mounts
                repo = str(config.triton.model_repository)
                if name in ("usr-gateway", "usr-retrain") and c["name"] != "init":
                    assert mounts[repo]["readOnly"] is (name == "usr-gateway")


def test_workloads(rendered) -> None:
    name, resources = rendered
    config = effective_config(resources)
    deployments = _by_kind(resources, "Deployment")
    for d in deployments.values():
        assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    hpa = _by_kind(resources, "HorizontalPodAutoscaler")["usr-gateway"]
    assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    streams = deployments[config.streams.app_id]
    # Kafka partitions bound the stream workers: more replicas than partitions would sit idle
    assert streams["spec"]["replicas"] <= config.kafka.topics.partitions
    assert streams["spec"]["replicas"] == config.streams.workers
    cron = _by_kind(resources, "CronJob")["usr-retrain"]
    assert cron["spec"]["schedule"] == render.RETRAIN_SCHEDULE and cron["spec"]["concurrencyPolicy"] == "Forbid"
    if name == "production":
        assert {r["metadata"].get("namespace") for r in resources} == {"usr-prod"}
        assert hpa["spec"]["minReplicas"] == 3 and deployments[config.triton.host]["spec"]["replicas"] == 2
        limits = deployments[config.triton.host]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == 1


def test_no_secret_values_in_deploy() -> None:
    for path in list(DEPLOY.rglob("*.y*ml")) + [PROJECT_ROOT / "docker-compose.yml"]:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                assert doc.get("kind") != "Secret", f"{path} holds a Secret"


# ------------------------------------------------------------------ the renderer itself

def test_configmap_hash_matches_kustomize() -> None:
    # reference values printed by kubectl kustomize (v5.5.0) for these generators
    assert kustomize.configmap_hash({"metadata": {"name": "x"}, "data": {"A": "b"}}) == "b9t2424hkf"
    assert kustomize.configmap_hash({"metadata": {"name": "usr-env"},
                                     "data": {"USR_CONFIG": "/etc/usr/config.yaml"}}) == "khtk87m7mc"


def test_strategic_merge_by_keys() -> None:
    base = {"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}],
                                     "volumeMounts": [{"name": "v", "mountPath": "/m"}]},
                                    {"name": "b", "image": "y"}],
                     "replicas": 1, "args": ["--x"]}}
    patch = {"spec": {"containers": [{"name": "a", "env": [{"name": "F", "value": "2"}],
                                      "volumeMounts": [{"name": "w", "mountPath": "/m"}]},
                                     {"name": "b", "$patch": "delete"}],
                      "replicas": None, "args": ["--y"]}}
    merged = kustomize.strategic_merge(base, patch)
    assert merged == {"spec": {"containers": [{"name": "a", "image": "x",
                                               "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}],
                                               "volumeMounts": [{"name": "w", "mountPath": "/m"}]}],
                               "args": ["--y"]}}


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: p-\n")
    with pytest.raises(kustomize.UnsupportedKustomization, match="namePrefix"):
        kustomize.build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("configMapGenerator:\n- name: c\n  files: [../x.yaml]\n")
    (tmp_path.parent / "x.yaml").write_text("a: 1\n")
    with pytest.raises(kustomize.UnsupportedKustomization, match="inside the kustomization"):
        kustomize.build(tmp_path)


def test_cli_kustomize_prints_the_overlay(capsys) -> None:
    from usr.cli import main

    assert main(["deploy", "kustomize", str(TARGETS["production"])]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert kustomize.index(docs) == kustomize.index(kustomize.build(TARGETS["production"]))
