"""Every parameter of the grocery-shop simulator, in one place.

Each value is justified by how grocery shoppers and shop systems behave, never by
what a ranking model would find easy. The configuration is saved as
``sim_config.json`` next to the output, and :meth:`SimConfig.from_dict` reads it back
(the live-user responder rebuilds the same world from it).

Ground truth in one paragraph: a user sees an item at a position; she examines that
position with probability ``exam(position)`` (position bias, power law per scenario),
and if examined clicks with probability ``sigmoid(attractiveness)``. Attractiveness is
a scenario-specific sum of: the query's intent match (search), the user's taste for the
item's sub-category, her brand loyalty, her price sensitivity times the item's relative
price, the item's popularity of the day, her recent behaviour (recent sub-categories,
items bought before), the time of day, and a fixed user x item idiosyncratic liking.
A click turns into an order with probability ``sigmoid(conversion)``; so an order
always implies a click, and ``p_ctcvr = p_click * p_order_given_click``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CatalogConfig:
    """The assortment: departments (cate1) -> sub-categories (cate2) -> items, brands."""

    n_cate1: int = 12
    """Departments of a grocery shop (produce, dairy, bakery, meat, drinks, snacks,
    frozen, pantry, household, personal care, baby, pet): a dozen is typical."""
    cate2_per_cate1: int = 8
    """Aisles per department (milk, yoghurt, cheese, butter ... in dairy); ~100 sub-categories
    is the size of a supermarket's shelf plan."""
    brands_per_cate1: int = 16
    """Brands active in one department. Brands span the aisles of their department (a dairy
    brand makes milk, yoghurt and butter) but rarely cross departments."""
    brand_zipf: float = 1.1
    """Brand market shares follow a Zipf law: two or three big brands and a long tail of
    small ones, as in most grocery categories."""
    cate2_size_concentration: float = 2.0
    """Dirichlet concentration of the number of items per aisle: some aisles (snacks,
    drinks) are much deeper than others (baby food) but none is empty."""
    price_sigma: float = 0.45
    """Spread of log price within an aisle: value packs and premium lines cost about
    0.6x to 1.6x the aisle's typical price."""
    popularity_sigma: float = 1.0
    """Spread of items' log popularity: a few best sellers sell an order of magnitude
    more than the median item (long-tail sales)."""
    n_price_buckets: int = 10
    """Price bucket = decile of the price within the item's aisle: shoppers judge a
    price against the other items of the same kind, not in absolute terms."""


@dataclass(frozen=True)
class UsersConfig:
    """Shoppers: household type, latent tastes, price sensitivity, habits."""

    n_segments: int = 8
    """Household types (single, couple, family with young kids, pet owners, students...):
    the profile bucket a shop can know from sign-up and loyalty data."""
    global_taste_sigma: float = 0.5
    """Aisles differ in how many people buy them at all (everybody buys bread, few buy
    baby formula)."""
    segment_taste_sigma: float = 0.6
    """Household type shifts needs (families buy nappies and cereal, singles ready meals)."""
    individual_taste_sigma: float = 0.6
    """Beyond the household type, individual tastes differ."""
    n_favourite_cate2: int = 5
    """Each household has a handful of staple aisles it buys almost every trip."""
    favourite_boost: float = 1.5
    """How much more attractive a staple aisle is than an average one (logit units)."""
    n_favourite_brands: int = 3
    """Brand loyalty: most shoppers have a few brands they keep buying."""
    price_sensitivity_sigma: float = 0.5
    """Log-normal spread of price sensitivity around 1: budget shoppers react to price
    two or three times as strongly as affluent ones."""
    search_share_alpha: float = 2.0
    """Beta(alpha, beta) of each shopper's share of search sessions (mean 0.4): some shoppers
    type what they want, others browse the feed; most mix both."""
    search_share_beta: float = 3.0
    activity_shape: float = 0.8
    """Gamma shape of sessions per day across shoppers: heavy-tailed, a minority of daily
    users and many occasional ones."""
    sessions_per_day: float = 0.8
    """Mean sessions per shopper per day in a grocery app (some open it daily to plan
    meals, many once or twice a week)."""
    n_levels: int = 5
    """Loyalty tiers (bronze ... diamond), assigned from activity like real tier schemes."""


@dataclass(frozen=True)
class SessionsConfig:
    """When shoppers come and how far they look."""

    start_date: str = "2024-03-04"
    """First simulated day (a Monday), UTC."""
    weekend_factor: float = 1.3
    """Grocery shopping peaks at the weekend: ~30% more sessions on Saturday and Sunday."""
    daypart_peaks: tuple[tuple[float, float, float], ...] = ((8.0, 1.5, 0.2), (12.5, 1.0, 0.25), (19.5, 2.0, 0.55))
    """(hour, sd, weight) of session start times: breakfast, lunch break and the evening
    peak when households plan dinner and the next day's shopping."""
    first_hour: float = 6.0
    """No sessions before this hour (night traffic is negligible for groceries)."""
    last_hour: float = 23.5
    min_gap_minutes: float = 15.0
    """Two sessions of one shopper start at least this far apart (a visit lasts minutes)."""
    search_list_mean: float = 10.0
    """Results a search session actually scrolls through: about one screen to a page."""
    search_list_min: int = 4
    search_list_max: int = 40
    rec_list_mean: float = 20.0
    """Items a feed session scrolls past: feeds are skimmed further than result lists."""
    rec_list_min: int = 6
    rec_list_max: int = 60
    search_ms_per_position: int = 900
    """Time to scan one search result (ms), which spaces impression timestamps."""
    rec_ms_per_position: int = 1200
    """Time to scroll past one feed card (ms)."""
    product_page_s: float = 20.0
    """A click opens the product page; the shopper reads it this long (s) before returning
    to the list, which delays the impressions further down."""
    pool_factor: float = 2.0
    """The shop retrieves about twice as many candidates as the shopper will see."""


@dataclass(frozen=True)
class SearchConfig:
    """Search sessions: the query expresses an intent."""

    brand_query_share: float = 0.2
    """Share of queries that name a brand ("brandname yoghurt"); most grocery queries are
    generic category words."""
    favourite_brand_in_query: float = 0.6
    """When a brand is named, it is one of the shopper's own brands this often."""
    modifier_share: float = 0.1
    """Share of queries with a price modifier ("cheap" or "premium")."""
    modifier_price_weight: float = 1.0
    """How strongly "cheap"/"premium" pushes towards lower/higher relative prices (logit
    per price standard deviation)."""
    intent_from_recent_share: float = 0.3
    """Share of searches for an aisle the shopper recently clicked in (she saw something in
    the feed, or comes back to a search): this is what ties S and R behaviour together."""
    intent_temperature: float = 1.0
    """Softmax temperature over the shopper's current tastes when choosing what to search."""
    retrieve_intent: float = 0.75
    """Retrieval mix: share of candidates from the query's aisle ..."""
    retrieve_brand_within_intent: float = 0.6
    """... of which, for brand queries, this share has the named brand ..."""
    retrieve_sibling: float = 0.2
    """... from other aisles of the same department (related products) ..."""
    retrieve_random: float = 0.05
    """... and popular items from anywhere (spelling/semantic misses of the engine)."""


@dataclass(frozen=True)
class RecConfig:
    """Feed sessions: candidates from what the shop knows of the shopper."""

    retrieve_history: float = 0.35
    """Share of feed candidates from aisles in the shopper's whole history (item-to-item)."""
    retrieve_recent: float = 0.25
    """... from aisles of her last few clicks (session-based recommendation)."""
    retrieve_again: float = 0.15
    """... the very items she clicked or bought before ("buy it again", vital in grocery)."""
    retrieve_popular: float = 0.25
    """... trending items (popular today), also the cold-start fallback."""


@dataclass(frozen=True)
class ScenarioWeights:
    """Attractiveness (click logit) weights of one scenario."""

    intercept: float
    """Click logit of an average item, before the effects below. Set so that the
    scenario's average CTR matches what shops report: search ~8-15% (the shopper asked
    for it), feed ~3-6% (unsolicited); most items a shopper scrolls past are not clicked."""
    intent_match: float
    """The item is in the query's aisle (search only)."""
    sibling_match: float
    """The item is in another aisle of the query's department (search only)."""
    brand_match: float
    """The query names the item's brand (search only)."""
    brand_mismatch: float
    """The query names another brand (search only)."""
    taste: float
    """Per unit of the shopper's current taste for the item's aisle."""
    favourite_brand: float
    """The item is of one of the shopper's brands."""
    price: float
    """Per price-sensitivity x relative-price standard deviation (negative: dearer is worse)."""
    popularity: float
    """Per unit of the item's log popularity today (social proof, availability)."""
    recent_aisle: float
    """Per unit of decayed count of the item's aisle among her last clicks (short-term interest)."""
    bought_before: float
    """The item is among items she ordered before (habitual repurchase)."""
    clicked_before: float
    """The item is among items she clicked but did not order (revisit)."""
    daypart: float
    """Multiplier on the department x time-of-day affinity (breakfast in the morning)."""
    need: float
    """Per unit of her need for the aisle (centred: -0.5 just bought ... +0.5 run out)."""


def _search_weights() -> ScenarioWeights:
    # A searcher knows what she wants: relevance to the query dominates; taste and habits
    # matter less than in the feed; price matters as she compares like with like.
    return ScenarioWeights(
        intercept=-4.0, intent_match=2.2, sibling_match=0.6, brand_match=1.2, brand_mismatch=-0.6,
        taste=0.3, favourite_brand=0.5, price=-0.45, popularity=0.3, recent_aisle=0.15,
        bought_before=0.7, clicked_before=0.3, daypart=0.3, need=0.5,
    )


def _rec_weights() -> ScenarioWeights:
    # A browser has no stated intent: long-term taste, recent interest, habits and the
    # moment of the day decide what catches her eye.
    return ScenarioWeights(
        intercept=-5.75, intent_match=0.0, sibling_match=0.0, brand_match=0.0, brand_mismatch=0.0,
        taste=0.75, favourite_brand=0.6, price=-0.3, popularity=0.35, recent_aisle=0.5,
        bought_before=1.0, clicked_before=0.4, daypart=1.0, need=1.2,
    )


@dataclass(frozen=True)
class ClickConfig:
    """Attractiveness and position bias."""

    search: ScenarioWeights = field(default_factory=_search_weights)
    rec: ScenarioWeights = field(default_factory=_rec_weights)
    idiosyncratic_sigma: float = 0.6
    """A shopper's liking of one particular item that no attribute explains (taste of a
    specific recipe, packaging). Fixed per user x item, the same in search and feed."""
    daypart_sigma: float = 0.35
    """Department x time-of-day affinity spread (bakery in the morning, drinks and snacks in
    the evening)."""
    recent_window: int = 10
    """Number of latest clicks that make up 'recent interest'."""
    recent_decay: float = 0.8
    """Each older click counts this much less than the next newer one."""
    exam_power_search: float = 0.9
    """Position bias of a result list: P(examine position p) = (1 + p) ** -power. Search
    lists are read top-down and attention drops quickly."""
    exam_power_rec: float = 0.5
    """Feeds are skimmed card by card while scrolling: attention drops more slowly."""


@dataclass(frozen=True)
class OrderConfig:
    """The click -> order funnel (conversion given click)."""

    intercept_search: float = -3.3
    """Base conversion logit of a search click. With the effects below this gives ~20%
    of search clicks ending in an order: searchers came to buy that thing."""
    intercept_rec: float = -3.9
    """Base conversion logit of a feed click (~12-15% convert): feed clicks are often
    curiosity."""
    intent_match: float = 0.4
    """A search click on an item of the query's aisle converts more than on a related one."""
    taste: float = 0.3
    favourite_brand: float = 0.4
    price: float = -0.6
    """At checkout the price counts more than when clicking."""
    bought_before: float = 1.0
    """Repurchase of a known product is the most reliable conversion in grocery."""
    need: float = 1.0
    """She buys what she has run out of (centred need, as for clicks)."""
    idiosyncratic_sigma: float = 0.5
    """Item-specific reasons to buy or not (size, ingredients), fixed per user x item."""
    idiosyncratic_shared: float = 0.5
    """Share of the click's idiosyncratic liking that also drives the purchase."""
    checkout_delay_s: tuple[float, float] = (30.0, 240.0)
    """Orders are placed at checkout, half a minute to four minutes after the last item seen."""


@dataclass(frozen=True)
class NeedsConfig:
    """Replenishment: groceries are used up and bought again. Each shopper's need for an
    aisle grows by 1/cycle per day up to 1 and drops to 0 when she orders from it."""

    cycle_days_median: float = 7.0
    """A household restocks a typical aisle about weekly ..."""
    cycle_days_sigma: float = 0.7
    """... milk and bread every few days, detergent or spices every month or two
    (log-normal spread of the cycle across aisles)."""
    intent_weight: float = 1.5
    """How strongly running out of something decides what she searches for (logit per unit
    of need, added to her tastes)."""


@dataclass(frozen=True)
class DriftConfig:
    """Day-to-day change."""

    taste_rho: float = 0.8
    """Daily persistence of taste deviations (meal plans, seasons, a new diet) around the
    long-term taste."""
    taste_sigma: float = 0.25
    """Daily innovation of the taste deviations (logit units)."""
    popularity_rho: float = 0.85
    """Daily persistence of an item's popularity deviation (promotions last days)."""
    popularity_sigma: float = 0.3
    """Daily innovation of popularity (promotions, stock-outs, trends)."""


@dataclass(frozen=True)
class PolicyConfig:
    """The shop's production ranker that ordered the logged lists."""

    skill: float = 0.6
    """Weight of the true attractiveness in the logged ranking score: a reasonable but
    imperfect production ranker (0 = random order)."""
    noise_sigma: float = 1.0
    """Noise of the logged ranking score (what the production ranker does not know)."""


@dataclass(frozen=True)
class HistoryConfig:
    """The behaviour sequence."""

    length: int = 50
    """Entries kept per shopper (the model reads the last 50)."""
    prior_mean: float = 25.0
    """Mean number of behaviours a shopper already had before the log starts (the shop
    is not new), scaled by her activity. Each is the click she chose among a few items
    of an aisle she likes, drawn from the same ground truth as the log, so the history
    at the start looks like the history later on."""
    prior_clicks_per_visit: float = 1.6
    """Mean clicks per past visit, all in one aisle: a shopper looking at yoghurts opens
    a couple of them (matches the clicks per clicked session of the log)."""
    prior_choice_set: int = 8
    """Items she chose among for each prior behaviour (a screenful)."""
    warmup_days: int = 5
    """Days simulated before the log starts and not written: the shop has been running,
    so the log should start with histories, needs and recent interests in the state a
    running shop has, not in the state of a freshly drawn prior."""


@dataclass(frozen=True)
class SimConfig:
    """The whole simulator configuration. Deterministic given ``seed``."""

    n_users: int = 10_000
    n_items: int = 10_000
    days: int = 7
    seed: int = 0
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    users: UsersConfig = field(default_factory=UsersConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    rec: RecConfig = field(default_factory=RecConfig)
    click: ClickConfig = field(default_factory=ClickConfig)
    order: OrderConfig = field(default_factory=OrderConfig)
    needs: NeedsConfig = field(default_factory=NeedsConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SimConfig":
        return _from_dict(cls, data)

    def replace(self, **changes: Any) -> "SimConfig":
        return dataclasses.replace(self, **changes)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in data.items():
        if name not in hints:
            raise ValueError(f"unknown simulator config key {cls.__name__}.{name}")
        f = hints[name]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = _from_dict(type(default), value)
        elif name in ("search", "rec") and cls is ClickConfig and isinstance(value, dict):
            kwargs[name] = ScenarioWeights(**value)
        elif isinstance(value, list):
            kwargs[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
