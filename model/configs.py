"""Named model configurations (FuxiCTR style) and the one uniform constructor.

A configuration block is a flat mapping of switches; blocks are named
``<Base>`` (the baseline row), ``<Base>+USR`` and the ablations ``<Base>+USR-IE``,
``-FG``, ``-GLMT``, ``-CL``. ``build_model(name_or_config, spec)`` builds any of them.
Extra blocks can be loaded from a YAML file whose top-level keys are block names; a block
may say ``extends: <name>`` to start from another block.

Every (choice) of USR_MODEL.md is a field here:
  ie_condition_user        IE condition also uses the stop-gradient user embedding
  fg_per_field             FG gates per field instead of per element
  cl_positive              "same_sample" (two views of one sample) or "same_user"
  cl_mask_same_user        drop same-user pairs from the negatives
  glmt_tie_ctcvr_to_global p_ctcvr from the global CTCVR instead of p_ctr * p_cvr
  global_labels            "table": global labels as the table's labeller attributed them
                           (the attribution window, same day by default, is the labeller's);
                           "scenario": y_g := y, z_g := z (no cross-scenario join)
  and the bucket counts live in the FeatureSpec.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from features.spec import FeatureSpec

BASE_NAMES: dict[str, str] = {
    "SharedBottom": "shared_bottom",
    "MMoE": "mmoe",
    "PLE": "ple",
    "STAR": "star",
    "M2M": "m2m",
    "APG": "apg",
}
ABLATIONS: dict[str, str] = {"IE": "use_ie", "FG": "use_fg", "GLMT": "use_glmt", "CL": "use_cl"}


@dataclass
class ModelConfig:
    name: str = "SharedBottom"
    base: str = "shared_bottom"
    base_params: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 8
    sparse_embeddings: bool = True
    scenario_dim: int = 8
    # USR switches (all off = the baseline row)
    use_ie: bool = False
    use_fg: bool = False
    use_glmt: bool = False
    use_cl: bool = False
    # static DIN (used when IE is off)
    din_hidden: int = 32
    # IE
    view_dim: int = 8
    ie_rank: int = 8
    ie_hidden: int = 32
    ie_condition_user: bool = False
    # FG
    fg_hidden: int = 64
    fg_per_field: bool = False
    # contrastive loss
    cl_tau: float = 0.1
    cl_weight: float = 0.1
    cl_proj_dim: int = 32
    cl_positive: str = "same_sample"
    cl_mask_same_user: bool = True
    # GLMT
    glmt_tie_ctcvr_to_global: bool = False
    global_weight: float = 1.0
    global_labels: str = "table"

    def __post_init__(self) -> None:
        if self.base not in BASE_NAMES.values():
            raise ValueError(f"model config '{self.name}': unknown base '{self.base}' (one of {sorted(BASE_NAMES.values())})")
        if self.cl_positive not in ("same_sample", "same_user"):
            raise ValueError(f"model config '{self.name}': cl_positive must be 'same_sample' or 'same_user'")
        if self.global_labels not in ("table", "scenario"):
            raise ValueError(f"model config '{self.name}': global_labels must be 'table' or 'scenario'")

    @property
    def uses_usr(self) -> bool:
        return self.use_ie or self.use_fg or self.use_glmt or self.use_cl

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"model config: unknown keys {sorted(unknown)}")
        return cls(**dict(raw))

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


def _named_blocks() -> dict[str, dict[str, Any]]:
    blocks: dict[str, dict[str, Any]] = {}
    for display, base in BASE_NAMES.items():
        blocks[display] = {"name": display, "base": base}
        usr = {"name": f"{display}+USR", "base": base, "use_ie": True, "use_fg": True, "use_glmt": True, "use_cl": True}
        blocks[f"{display}+USR"] = usr
        for short, switch in ABLATIONS.items():
            blocks[f"{display}+USR-{short}"] = {**usr, "name": f"{display}+USR-{short}", switch: False}
    return blocks


NAMED_CONFIGS: dict[str, dict[str, Any]] = _named_blocks()


def load_blocks(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read extra named blocks from YAML (``extends:`` resolves against known blocks)."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text()) or {}
    resolved: dict[str, dict[str, Any]] = {}
    for name, block in raw.items():
        block = dict(block or {})
        parent = block.pop("extends", None)
        start = dict(resolved.get(parent) or NAMED_CONFIGS.get(parent) or {}) if parent else {}
        if parent and not start:
            raise ValueError(f"model block '{name}' extends unknown block '{parent}'")
        resolved[name] = {**start, **block, "name": name}
    return resolved


def get_config(name_or_config: str | ModelConfig | Mapping[str, Any], **overrides: Any) -> ModelConfig:
    if isinstance(name_or_config, ModelConfig):
        cfg = name_or_config
    elif isinstance(name_or_config, str):
        if name_or_config not in NAMED_CONFIGS:
            raise KeyError(f"unknown model '{name_or_config}' (known: {', '.join(NAMED_CONFIGS)})")
        cfg = ModelConfig.from_dict(NAMED_CONFIGS[name_or_config])
    else:
        cfg = ModelConfig.from_dict(name_or_config)
    return cfg.replace(**overrides) if overrides else cfg


def build_model(name_or_config: str | ModelConfig | Mapping[str, Any], spec: FeatureSpec, **overrides: Any):
    """The uniform constructor: a named block, a ModelConfig or a dict -> RankingModel."""
    from model.usr_model import RankingModel

    return RankingModel(get_config(name_or_config, **overrides), spec)
