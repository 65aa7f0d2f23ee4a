"""A minimal, pure-Python kustomize for this project's own manifests.

It renders ``deploy/base`` and ``deploy/overlays/*`` where neither ``kustomize`` nor
``kubectl kustomize`` is installed, so the tests can always check the rendered output;
where the real tool exists, the tests compare the two. Supported (exactly what
deploy/ uses, with kustomize's semantics):

* ``resources``: YAML files and directories holding a kustomization (recursively)
* ``namespace``
* ``labels`` (``pairs``, ``includeSelectors``, ``includeTemplates``)
* ``configMapGenerator`` (``files`` as ``key=path`` or ``path``, ``literals``,
  ``behavior`` create | merge | replace) with kustomize's content-hash name suffix
  (``generatorOptions.disableNameSuffixHash`` turns it off), and the renaming of every
  reference to a generated ConfigMap in pod specs
* ``patches`` with ``path`` or inline ``patch``: strategic-merge patches addressed by
  kind and metadata.name (merge keys: containers/volumes/env by name, volumeMounts by
  mountPath, ports by containerPort/port)
* ``images`` (``newName``, ``newTag``, ``digest``) and ``replicas``

Anything else in a kustomization raises :class:`UnsupportedKustomization`, so the
renderer never silently ignores a field the real tool would apply.

    usr deploy kustomize deploy/overlays/production
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "namespace", "labels", "configMapGenerator",
                  "generatorOptions", "patches", "images", "replicas"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
SELECTOR_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "PodDisruptionBudget"}
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
              "env": "name", "imagePullSecrets": "name", "volumeMounts": "mountPath"}


class UnsupportedKustomization(ValueError):
    """The kustomization uses something this renderer does not implement."""


@dataclass
class _Generated:
    name: str            # name before the hash suffix
    hashed: bool


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"no kustomization in {directory}")


# ------------------------------------------------------------------ hashing (kustomize's api/hasher)

def _go_json(value: Any) -> str:
    """encoding/json.Marshal: sorted keys, no spaces, <>& escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _encode_hash(hex_digest: str) -> str:
    """The first 10 hex characters with 0,1,3,a,e swapped out (no vowels, no look-alikes)."""
    table = str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"})
    return hex_digest[:10].translate(table)


def configmap_hash(configmap: dict[str, Any]) -> str:
    """kustomize's suffix: sha256 of {"data", "kind", "name"} as Go marshals it. The name is
    always "" there: kustomize looks it up with ``yaml.Lookup("metadata/name")``, a single
    (absent) field, so only kind and data count (checked against ``kubectl kustomize``)."""
    encoded: dict[str, Any] = {"kind": "ConfigMap", "name": "", "data": configmap.get("data") or {}}
    if configmap.get("binaryData"):
        encoded["binaryData"] = configmap["binaryData"]
    return _encode_hash(hashlib.sha256(_go_json(encoded).encode()).hexdigest())


# ------------------------------------------------------------------ strategic merge

def _list_merge_key(field: str, items: list[Any]) -> str | None:
    if field in MERGE_KEYS:
        return MERGE_KEYS[field]
    if field == "ports" and items and all(isinstance(i, dict) for i in items):
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return None


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        key = _list_merge_key(field, base + patch)
        if key is None:
            return copy.deepcopy(patch)
        out = [copy.deepcopy(b) for b in base]
        for item in patch:
            idx = next((i for i, b in enumerate(out) if isinstance(b, dict) and b.get(key) == item.get(key)), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    out.pop(idx)
                continue
            if idx is None:
                out.append(copy.deepcopy(item))
            else:
                out[idx] = strategic_merge(out[idx], item, field)
        return out
    return copy.deepcopy(patch)


# ------------------------------------------------------------------ transformers

def _pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        return [spec]
    if kind == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})]
    if kind in WORKLOAD_KINDS:
        return [spec.get("template", {}).get("spec", {})]
    return []


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for key in ("initContainers", "containers") for c in pod.get(key) or []]


def _set_labels(doc: dict[str, Any], pairs: dict[str, str], selectors: bool, templates: bool) -> None:
    doc.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
    kind, spec = doc.get("kind"), doc.get("spec")
    if spec is None:
        return
    if selectors:
        templates = True
        if kind == "Service":
            spec.setdefault("selector", {}).update(pairs)
        elif kind in SELECTOR_KINDS or kind == "Job":
            spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)
    if templates:
        if kind in WORKLOAD_KINDS - {"CronJob"}:
            spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        elif kind == "CronJob":
            jt = spec.setdefault("jobTemplate", {})
            jt.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            jt.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {}).setdefault(
                "labels", {}).update(pairs)


def _split_image(image: str) -> tuple[str, str, str]:
    """name, tag (':x' or ''), digest ('@sha256:..' or '')."""
    digest = ""
    if "@" in image:
        image, digest = image.split("@", 1)
        digest = "@" + digest
    name, tag = image, ""
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        name, t = image.rsplit(":", 1)
        tag = ":" + t
    return name, tag, digest


def _set_images(doc: dict[str, Any], rules: list[dict[str, Any]]) -> None:
    for pod in _pod_specs(doc):
        for c in _containers(pod):
            name, tag, digest = _split_image(c.get("image", ""))
            for rule in rules:
                if rule["name"] != name:
                    continue
                new_name = rule.get("newName", name)
                if "digest" in rule:
                    c["image"] = f"{new_name}@{rule['digest']}"
                elif "newTag" in rule:
                    c["image"] = f"{new_name}:{rule['newTag']}"
                else:
                    c["image"] = f"{new_name}{tag}{digest}"


def _rename_configmap_refs(doc: dict[str, Any], names: dict[str, str]) -> None:
    for pod in _pod_specs(doc):
        for v in pod.get("volumes") or []:
            if "configMap" in v and v["configMap"].get("name") in names:
                v["configMap"]["name"] = names[v["configMap"]["name"]]
            for src in (v.get("projected") or {}).get("sources") or []:
                if "configMap" in src and src["configMap"].get("name") in names:
                    src["configMap"]["name"] = names[src["configMap"]["name"]]
        for c in _containers(pod):
            for e in c.get("envFrom") or []:
                ref = e.get("configMapRef")
                if ref and ref.get("name") in names:
                    ref["name"] = names[ref["name"]]
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
                if ref and ref.get("name") in names:
                    ref["name"] = names[ref["name"]]


# ------------------------------------------------------------------ the build

def _generate_configmap(directory: Path, spec: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, str] = {}
    for entry in spec.get("files") or []:
        key, _, rel = entry.partition("=") if "=" in entry else (Path(entry).name, "", entry)
        path = (directory / rel).resolve()
        if directory.resolve() not in path.parents:
            raise UnsupportedKustomization(f"{entry}: files must lie inside the kustomization directory")
        data[key] = path.read_text()
    for literal in spec.get("literals") or []:
        key, sep, value = literal.partition("=")
        if not sep:
            raise UnsupportedKustomization(f"literal {literal!r} is not KEY=VALUE")
        data[key] = value
    for unsupported in set(spec) - {"name", "files", "literals", "behavior"}:
        raise UnsupportedKustomization(f"configMapGenerator.{unsupported}")
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": spec["name"]}, "data": data}


def _find(resources: list[dict[str, Any]], kind: str, name: str) -> int | None:
    return next((i for i, r in enumerate(resources)
                 if r.get("kind") == kind and r.get("metadata", {}).get("name") == name), None)


def _build(directory: Path) -> tuple[list[dict[str, Any]], dict[str, _Generated]]:
    kfile = _kustomization_file(directory)
    k = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(k) - SUPPORTED_KEYS
    if unknown:
        raise UnsupportedKustomization(f"{kfile}: unsupported fields {sorted(unknown)}")
    resources: list[dict[str, Any]] = []
    generated: dict[str, _Generated] = {}
    for entry in k.get("resources") or []:
        path = directory / entry
        if path.is_dir():
            sub, sub_generated = _build(path)
            resources.extend(sub)
            generated.update(sub_generated)
        else:
            resources.extend(load_yaml_docs(path))
    hashed = not (k.get("generatorOptions") or {}).get("disableNameSuffixHash", False)
    for spec in k.get("configMapGenerator") or []:
        cm = _generate_configmap(directory, spec)
        behavior = spec.get("behavior", "create")
        idx = _find(resources, "ConfigMap", spec["name"])
        if behavior == "create":
            if idx is not None:
                raise UnsupportedKustomization(f"ConfigMap {spec['name']} exists: use behavior merge or replace")
            resources.append(cm)
            generated[spec["name"]] = _Generated(spec["name"], hashed)
        elif idx is None:
            raise UnsupportedKustomization(f"ConfigMap {spec['name']} to {behavior} is not in the resources")
        elif behavior == "merge":
            resources[idx].setdefault("data", {}).update(cm["data"])
        elif behavior == "replace":
            resources[idx]["data"] = cm["data"]
        else:
            raise UnsupportedKustomization(f"configMapGenerator behavior {behavior!r}")
    for patch in k.get("patches") or []:
        if set(patch) - {"path", "patch"}:
            raise UnsupportedKustomization(f"patch fields {sorted(set(patch) - {'path', 'patch'})} (only path/patch)")
        docs = load_yaml_docs(directory / patch["path"]) if "path" in patch else \
            [d for d in yaml.safe_load_all(patch["patch"]) if d]
        for doc in docs:
            kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
            idx = _find(resources, kind, name)
            if idx is None:
                raise UnsupportedKustomization(f"patch target {kind}/{name} not found")
            resources[idx] = strategic_merge(resources[idx], doc)
    if "namespace" in k:
        for r in resources:
            r.setdefault("metadata", {})["namespace"] = k["namespace"]
    for rule in k.get("labels") or []:
        if set(rule) - {"pairs", "includeSelectors", "includeTemplates"}:
            raise UnsupportedKustomization(f"labels fields {sorted(rule)}")
        for r in resources:
            _set_labels(r, rule["pairs"], rule.get("includeSelectors", False), rule.get("includeTemplates", False))
    if k.get("images"):
        for r in resources:
            _set_images(r, k["images"])
    for rule in k.get("replicas") or []:
        for r in resources:
            if r.get("kind") in {"Deployment", "StatefulSet", "ReplicaSet"} and r["metadata"]["name"] == rule["name"]:
                r["spec"]["replicas"] = rule["count"]
    return resources, generated


def build(directory: str | Path) -> list[dict[str, Any]]:
    """Render a kustomization directory into its list of resources."""
    resources, generated = _build(Path(directory))
    renames: dict[str, str] = {}
    for r in resources:
        name = r.get("metadata", {}).get("name")
        if r.get("kind") == "ConfigMap" and name in generated and generated[name].hashed:
            renames[name] = f"{name}-{configmap_hash(r)}"
            r["metadata"]["name"] = renames[name]
    for r in resources:
        _rename_configmap_refs(r, renames)
    return resources


def index(resources: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> resource."""
    return {(r["kind"], r["metadata"]["name"]): r for r in resources}
