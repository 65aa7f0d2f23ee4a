"""Hashed embeddings: one concatenated table for every field of the feature spec.

Each input tensor (user, item, context, query, hist) holds per-field hashed ids in
``0 .. buckets-1``; the layer adds the field's table offset and looks the rows up in a
single ``nn.Embedding``. Index 0 of every field is padding / missing and always embeds to
the zero vector (the output is multiplied by ``ids > 0``), so it carries no gradient.
Fields sharing a table (``item_id`` / ``hist_item_id``) share rows.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from features.spec import FeatureSpec


class HashedEmbedding(nn.Module):
    def __init__(self, spec: FeatureSpec, dim: int, *, sparse: bool = True, init_std: float = 0.05):
        super().__init__()
        self.dim = dim
        self.table = nn.Embedding(spec.total_rows(), dim, sparse=sparse)
        nn.init.normal_(self.table.weight, std=init_std)
        for group in ("user", "item", "context", "query", "hist"):
            self.register_buffer(f"{group}_offsets", torch.tensor(spec.group_offsets(group), dtype=torch.long), persistent=False)

    def lookup(self, ids: Tensor, offsets: Tensor) -> Tensor:
        """``ids [..., F]`` -> ``[..., F, dim]`` with zero vectors where ``ids == 0``."""
        present = (ids > 0).unsqueeze(-1).to(self.table.weight.dtype)
        return self.table(ids + offsets) * present

    def forward(self, user: Tensor, item: Tensor, context: Tensor, query: Tensor,
                hist: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return (
            self.lookup(user, self.user_offsets),
            self.lookup(item, self.item_offsets),
            self.lookup(context, self.context_offsets),
            self.lookup(query, self.query_offsets),
            self.lookup(hist, self.hist_offsets),
        )


class QueryEncoder(nn.Module):
    """Query embedding = [e_query_id ; mean of term embeddings]; samples without a query
    (rec, or an unknown query with no terms) get the learned NO_QUERY vector."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = 2 * dim
        self.no_query = nn.Parameter(torch.randn(2 * dim) * 0.05)

    def forward(self, query_ids: Tensor, query_emb: Tensor) -> Tensor:
        # query_ids [B, 1+Q], query_emb [B, 1+Q, d]
        term_present = (query_ids[:, 1:] > 0).to(query_emb.dtype)
        n_terms = term_present.sum(1, keepdim=True)
        terms = query_emb[:, 1:].sum(1) / n_terms.clamp(min=1.0)
        encoded = torch.cat([query_emb[:, 0], terms], dim=1)
        has_query = ((query_ids[:, 0] > 0) | (n_terms.squeeze(1) > 0)).unsqueeze(1)
        return torch.where(has_query, encoded, self.no_query.unsqueeze(0).expand_as(encoded))
