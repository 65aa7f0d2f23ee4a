"""The ranking model: a multi-scenario base, with or without USR.

``RankingModel(config, spec)`` (build it with :func:`model.configs.build_model`):

- inputs: the named tensors of :mod:`features.spec` (``scenario, user, item, context,
  query, hist, hist_mask``), as separate arguments, batch first;
- output: ``Dict[str, Tensor]`` with ``ctr`` and ``ctcvr`` of shape ``[B]``; while training
  also ``gctr``/``gctcvr`` (GLMT) and ``cl_loss`` (a scalar, contrastive loss).

Pipeline: hashed embeddings -> interest (static DIN over the mixed sequence, or IE: h_S, h_R)
-> features (E, or FG: E_S, E_R) -> x = [E_S; E_R; h_S; h_R; query; e_s] -> base ->
slot representations (S, R, + G with GLMT) -> ESMM heads or GLMT heads.
With every USR switch off this is exactly the baseline row of USR_MODEL.md.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from features.spec import FeatureSpec
from model.bases.apg import APG
from model.bases.m2m import M2M
from model.bases.mmoe import MMoE
from model.bases.ple import PLE
from model.bases.shared_bottom import SharedBottom
from model.bases.star import STAR
from model.configs import ModelConfig
from model.layers.contrastive import ViewContrast
from model.layers.din import DINAttention
from model.layers.embeddings import HashedEmbedding, QueryEncoder
from model.layers.fg import FeatureGenerator
from model.layers.glmt import ESMMHead, GLMTHead
from model.layers.ie import InterestExtractor

BASE_CLASSES = {
    "shared_bottom": SharedBottom,
    "mmoe": MMoE,
    "ple": PLE,
    "star": STAR,
    "m2m": M2M,
    "apg": APG,
}


class RankingModel(nn.Module):
    def __init__(self, config: ModelConfig, spec: FeatureSpec):
        super().__init__()
        self.config = config
        self.spec = spec
        d = config.embedding_dim
        n_user, n_item, n_context = len(spec.user_fields), len(spec.item_fields), len(spec.context_fields)
        key_dim = len(spec.hist_fields) * d
        item_dim = n_item * d
        user_dim = n_user * d
        feature_dim = (n_user + n_item + n_context) * d

        self.embedding = HashedEmbedding(spec, d, sparse=config.sparse_embeddings)
        self.query_encoder = QueryEncoder(d)
        query_dim = self.query_encoder.out_dim
        target_dim = item_dim + query_dim
        self.scenario_emb = nn.Embedding(2, config.scenario_dim)

        self.ie: Optional[InterestExtractor] = None
        self.din: Optional[DINAttention] = None
        if config.use_ie:
            self.ie = InterestExtractor(key_dim, target_dim, config.view_dim, user_dim, config.ie_rank,
                                        config.ie_hidden, condition_user=config.ie_condition_user)
        else:
            self.din = DINAttention(key_dim, target_dim, config.din_hidden)
        self.fg: Optional[FeatureGenerator] = None
        if config.use_fg:
            self.fg = FeatureGenerator(n_user + n_item + n_context, d, config.view_dim, config.fg_hidden, config.fg_per_field)

        self.cl_interest: Optional[ViewContrast] = None
        self.cl_features: Optional[ViewContrast] = None
        if config.use_cl:
            same_user_positive = config.cl_positive == "same_user"
            if config.use_ie:
                self.cl_interest = ViewContrast(key_dim, config.cl_proj_dim, config.cl_tau, config.cl_mask_same_user, same_user_positive)
            if config.use_fg:
                self.cl_features = ViewContrast(feature_dim, config.cl_proj_dim, config.cl_tau, config.cl_mask_same_user, same_user_positive)

        in_dim = feature_dim * (2 if config.use_fg else 1) + key_dim * (2 if config.use_ie else 1) + query_dim + config.scenario_dim
        n_slots = 3 if config.use_glmt else 2
        self.base = BASE_CLASSES[config.base](in_dim, n_slots, 2, **config.base_params)
        self.esmm: Optional[ESMMHead] = None
        self.glmt: Optional[GLMTHead] = None
        if config.use_glmt:
            self.glmt = GLMTHead(self.base.out_dim, config.glmt_tie_ctcvr_to_global)
        else:
            self.esmm = ESMMHead(self.base.out_dim, 2)

    def forward(self, scenario: Tensor, user: Tensor, item: Tensor, context: Tensor, query: Tensor,
                hist: Tensor, hist_mask: Tensor) -> Dict[str, Tensor]:
        b = scenario.size(0)
        e_user, e_item, e_context, e_query, e_hist = self.embedding(user, item, context, query, hist)
        query_vec = self.query_encoder(query, e_query)
        user_flat = e_user.reshape(b, -1)
        item_flat = e_item.reshape(b, -1)
        keys = e_hist.reshape(b, hist.size(1), -1)
        mask = hist_mask.to(keys.dtype)
        features = torch.cat([user_flat, item_flat, e_context.reshape(b, -1)], dim=1)
        target = torch.cat([item_flat, query_vec], dim=1)

        parts: List[Tensor] = []
        cl_terms: List[Tensor] = []
        fg = self.fg
        if fg is not None:
            e_search, e_rec = fg(features)
            parts.append(e_search)
            parts.append(e_rec)
            cl_features = self.cl_features
            if cl_features is not None and self.training:
                cl_terms.append(cl_features(e_search, e_rec, user[:, 0]))
        else:
            parts.append(features)
        ie = self.ie
        din = self.din
        if ie is not None:
            target_rec = torch.cat([item_flat, self.query_encoder.no_query.unsqueeze(0).expand(b, -1)], dim=1)
            h_search, h_rec = ie(keys, mask, target, target_rec, user_flat)
            parts.append(h_search)
            parts.append(h_rec)
            cl_interest = self.cl_interest
            if cl_interest is not None and self.training:
                cl_terms.append(cl_interest(h_search, h_rec, user[:, 0]))
        elif din is not None:
            parts.append(din(keys, mask, target))
        parts.append(query_vec)
        parts.append(self.scenario_emb(scenario))

        reps = self.base(torch.cat(parts, dim=1), scenario)
        glmt = self.glmt
        esmm = self.esmm
        if glmt is not None:
            out = glmt(reps, scenario)
        elif esmm is not None:
            out = esmm(reps, scenario)
        else:
            raise RuntimeError("no output head")
        if len(cl_terms) > 0:
            total = cl_terms[0]
            for term in cl_terms[1:]:
                total = total + term
            out["cl_loss"] = total
        return out


class ServingModule(nn.Module):
    """What is exported: same inputs, returns the tuple ``(ctr, ctcvr)``, each ``[B]``."""

    def __init__(self, model: RankingModel):
        super().__init__()
        self.model = model

    def forward(self, scenario: Tensor, user: Tensor, item: Tensor, context: Tensor, query: Tensor,
                hist: Tensor, hist_mask: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(scenario, user, item, context, query, hist, hist_mask)
        return out["ctr"], out["ctcvr"]
