"""Behaviour from before the log starts: histories that look like the ones the shop
will produce, drawn from the same ground truth."""
from __future__ import annotations

import numpy as np

from usr.data.sim.history import Snapshot
from usr.data.sim.sampling import sample_rows, sigmoid
from usr.data.sim.truth import Context, appeal
from usr.data.sim.world import World
from usr.data.tables import ACTION_CLICK, ACTION_ORDER, SOURCE_REC, SOURCE_SEARCH


def fill_prior_history(world: World, rng: np.random.Generator) -> None:
    """Give each shopper ``~prior_mean x relative activity`` past behaviours, oldest first.

    Behaviours come in visits of ``~prior_clicks_per_visit`` clicks in one aisle drawn
    from her long-term tastes; for each click, a screenful of that aisle's
    items (by popularity), the one she clicked drawn in proportion to exp(click logit)
    (search weights for search-sourced entries, feed weights otherwise), and whether she
    then ordered it from the conversion probability.
    """
    cfg = world.config
    pop = world.users
    cat = world.catalog
    k = cfg.history.prior_choice_set
    rel = pop.activity / max(cfg.users.sessions_per_day, 1e-9)
    per_visit = cfg.history.prior_clicks_per_visit
    visits = rng.poisson(cfg.history.prior_mean * rel / per_visit)
    visits[0] = 0
    v_user = np.repeat(np.arange(pop.n_users + 1), visits)
    if v_user.size == 0:
        return
    v_search = rng.random(v_user.size) < pop.search_share[v_user]
    v_cate2 = sample_rows(pop.taste_long[:, 1:].astype(np.float64), v_user, rng.random(v_user.size)) + 1
    # several clicks per visit, in the same aisle (histories come in clumps)
    v_clicks = 1 + rng.poisson(per_visit - 1.0, size=v_user.size)
    users = np.repeat(v_user, v_clicks)
    is_search = np.repeat(v_search, v_clicks)
    cate2 = np.repeat(v_cate2, v_clicks)
    m = users.size
    cand_user = np.repeat(users, k)
    cand_c2 = np.repeat(cate2, k)
    cand_s = np.repeat(is_search, k)
    items = world.state.samplers["cate2"].sample(cand_c2, rng.random(m * k))
    empty = Snapshot(*(np.zeros((1, 1), dtype=np.int64) for _ in range(5)), count=np.zeros(1, dtype=np.int64))
    ctx = Context(users=cand_user, items=items, is_search=cand_s, intent_cate2=np.where(cand_s, cand_c2, 0),
                  query_brand=np.zeros(m * k, dtype=np.int64), modifier=np.zeros(m * k, dtype=np.int64),
                  hour=rng.integers(7, 22, size=m * k), snapshot=empty, snap_row=np.zeros(m * k, dtype=np.int64))
    ap = appeal(world, ctx)
    g = (ap.click_logit - np.log(-np.log(rng.random(m * k)))).reshape(m, k)
    pick = np.arange(m) * k + g.argmax(axis=1)
    chosen = items[pick]
    ordered = rng.random(m) < sigmoid(ap.order_logit[pick])
    world.state.history.append(
        users, chosen, cat.cate2[chosen], cat.brand[chosen],
        np.where(is_search, SOURCE_SEARCH, SOURCE_REC).astype(np.int8),
        np.where(ordered, ACTION_ORDER, ACTION_CLICK).astype(np.int8))
