"""HashedEmbedding and QueryEncoder."""
import torch

from tests.unit.conftest_model import assert_script_matches, tiny_inputs, tiny_spec
from model.layers.embeddings import HashedEmbedding, QueryEncoder


def test_shapes_and_zero_vectors_for_padding():
    spec = tiny_spec()
    emb = HashedEmbedding(spec, 6, sparse=False)
    x = tiny_inputs(16, spec=spec)
    e_user, e_item, e_ctx, e_query, e_hist = emb(x["user"], x["item"], x["context"], x["query"], x["hist"])
    assert e_user.shape == (16, 3, 6) and e_item.shape == (16, 5, 6) and e_ctx.shape == (16, 3, 6)
    assert e_query.shape == (16, 5, 6) and e_hist.shape == (16, 10, 5, 6)
    padded = x["hist"] == 0
    assert padded.any()
    assert (e_hist[padded] == 0).all()
    assert (e_hist[~padded].abs().sum(-1) > 0).all()


def test_item_and_history_share_rows_and_fields_use_distinct_tables():
    spec = tiny_spec()
    emb = HashedEmbedding(spec, 4, sparse=False)
    ids = torch.tensor([[3, 3, 3, 3, 3]])
    e_item = emb.lookup(ids, emb.item_offsets)
    e_hist = emb.lookup(ids.view(1, 1, 5), emb.hist_offsets)
    torch.testing.assert_close(e_item[0, 0], e_hist[0, 0, 0])     # item_id == hist_item_id table
    torch.testing.assert_close(e_item[0, 2], e_hist[0, 0, 1])     # cate2 == hist_cate2 table
    assert not torch.allclose(e_item[0, 0], e_item[0, 1])        # item_id vs cate1: different tables


def test_padding_rows_get_no_gradient():
    spec = tiny_spec()
    emb = HashedEmbedding(spec, 4, sparse=False)
    ids = torch.tensor([[0, 3, 0]])
    offsets = emb.user_offsets
    emb.lookup(ids, offsets).sum().backward()
    grad = emb.table.weight.grad
    assert grad[offsets[0]].abs().sum() == 0 and grad[offsets[2]].abs().sum() == 0
    assert grad[offsets[1] + 3].abs().sum() > 0


def test_query_encoder_uses_no_query_vector_without_query():
    enc = QueryEncoder(4)
    ids = torch.tensor([[0, 0, 0], [5, 0, 0], [0, 2, 3]])
    emb = torch.randn(3, 3, 4) * (ids > 0).unsqueeze(-1)
    out = enc(ids, emb)
    assert out.shape == (3, 8)
    torch.testing.assert_close(out[0], enc.no_query)
    torch.testing.assert_close(out[1], torch.cat([emb[1, 0], torch.zeros(4)]))
    torch.testing.assert_close(out[2, 4:], emb[2, 1:].mean(0))


def test_script_matches_eager():
    spec = tiny_spec()
    x = tiny_inputs(8, spec=spec)
    assert_script_matches(HashedEmbedding(spec, 4), x["user"], x["item"], x["context"], x["query"], x["hist"])
    assert_script_matches(QueryEncoder(4), x["query"], torch.randn(8, 5, 4))
