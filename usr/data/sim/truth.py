"""The ground truth: true click and order probabilities of an impression.

Used by the log generator and by the live responder alike, so both draw from exactly
the same model. See :mod:`usr.data.sim.config` for the meaning of every weight.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usr.data.sim.config import ScenarioWeights
from usr.data.sim.history import Snapshot
from usr.data.sim.sampling import hash_normal, sigmoid
from usr.data.sim.world import World, daypart_of_hour

_SALT_CLICK = 0x51C1
_SALT_ORDER = 0x0DE5
_WEIGHT_NAMES = ("intent_match", "sibling_match", "brand_match", "brand_mismatch", "taste",
                 "favourite_brand", "price", "popularity", "recent_aisle", "bought_before",
                 "clicked_before", "daypart", "need")


@dataclass
class Context:
    """What is known about each candidate impression (arrays of one length n).

    ``snap_row[j]`` is the row of ``snapshot`` holding the user's history at request time.
    ``intent_cate2``/``query_brand``/``modifier`` are 0 for rec and for 'none'.
    """

    users: np.ndarray
    items: np.ndarray
    is_search: np.ndarray
    intent_cate2: np.ndarray
    query_brand: np.ndarray
    modifier: np.ndarray
    hour: np.ndarray
    snapshot: Snapshot
    snap_row: np.ndarray


@dataclass
class Appeal:
    """Per candidate: the click logit with and without the idiosyncratic part (a ranker
    can at best know the latter), and the conversion logit."""

    click_logit: np.ndarray
    known_logit: np.ndarray
    order_logit: np.ndarray


def _weights(w: ScenarioWeights) -> np.ndarray:
    return np.array([getattr(w, k) for k in _WEIGHT_NAMES])


def appeal(world: World, ctx: Context) -> Appeal:
    """Click and conversion logits of every candidate (position not applied)."""
    cfg = world.config
    cat = world.catalog
    u, i = ctx.users, ctx.items
    c2 = cat.cate2[i]
    c1 = cat.cate1[i]
    b = cat.brand[i]
    is_s = ctx.is_search.astype(bool)

    intent = is_s & (c2 == ctx.intent_cate2)
    sibling = is_s & ~intent & (c1 == cat.cate2_cate1[ctx.intent_cate2])
    has_qb = is_s & (ctx.query_brand > 0)
    brand_match = has_qb & (b == ctx.query_brand)
    brand_mismatch = has_qb & (b != ctx.query_brand)
    taste = world.taste(u, c2)
    fav_brand = (world.users.fav_brands[u] == b[:, None]).any(axis=1)
    price_z = cat.price_z[i]
    price = world.users.price_beta[u] * price_z
    pop = world.logpop(i)
    # interest in an aisle saturates: the third yoghurt click adds less than the first
    recent = np.log1p(ctx.snapshot.recent_aisle(ctx.snap_row, c2, cfg.click.recent_window, cfg.click.recent_decay))
    bought, clicked = ctx.snapshot.contains(ctx.snap_row, i)
    daypart = cat.daypart_affinity[c1, daypart_of_hour(ctx.hour)]
    need = world.state.need[u, c2].astype(np.float64) - 0.5

    feats = np.stack([intent, sibling, brand_match, brand_mismatch, taste, fav_brand, price, pop,
                      recent, bought, clicked, daypart, need], axis=1).astype(np.float64)
    w = np.where(is_s[:, None], _weights(cfg.click.search)[None, :], _weights(cfg.click.rec)[None, :])
    intercept = np.where(is_s, cfg.click.search.intercept, cfg.click.rec.intercept)
    known = intercept + (feats * w).sum(axis=1)
    # price modifiers in the query: "cheap" favours low, "premium" high relative prices
    mod_sign = np.where(ctx.modifier == 1, -1.0, np.where(ctx.modifier == 2, 1.0, 0.0))
    known += is_s * mod_sign * cfg.search.modifier_price_weight * price_z

    z_click = hash_normal(u, i, cfg.seed * 7 + _SALT_CLICK)
    z_order = hash_normal(u, i, cfg.seed * 7 + _SALT_ORDER)
    click_logit = known + cfg.click.idiosyncratic_sigma * z_click

    oc = cfg.order
    rho = oc.idiosyncratic_shared
    order_logit = (np.where(is_s, oc.intercept_search, oc.intercept_rec)
                   + oc.intent_match * intent + oc.taste * taste + oc.favourite_brand * fav_brand
                   + oc.price * price + oc.bought_before * bought + oc.need * need
                   + oc.idiosyncratic_sigma * (rho * z_click + np.sqrt(1 - rho * rho) * z_order))
    return Appeal(click_logit=click_logit, known_logit=known, order_logit=order_logit)


def examination(world: World, positions: np.ndarray, is_search: np.ndarray) -> np.ndarray:
    """P(the shopper looks at this position): a power law, steeper in search."""
    c = world.config.click
    power = np.where(np.asarray(is_search, bool), c.exam_power_search, c.exam_power_rec)
    return (1.0 + np.asarray(positions, np.float64)) ** -power


def probabilities(world: World, ap: Appeal, positions: np.ndarray, is_search: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p_click, p_ctcvr) of each candidate shown at ``positions``."""
    p_click = examination(world, positions, is_search) * sigmoid(ap.click_logit)
    p_ctcvr = p_click * sigmoid(ap.order_logit)
    return p_click, p_ctcvr
