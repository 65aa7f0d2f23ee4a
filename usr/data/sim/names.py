"""Readable names for the simulated shop: departments, aisles, brands, and the query
vocabulary (term ids) built from them."""
from __future__ import annotations

import numpy as np

DEPARTMENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("produce", ("apples", "bananas", "berries", "citrus", "tomatoes", "salad", "potatoes", "herbs")),
    ("dairy", ("milk", "yoghurt", "cheese", "butter", "cream", "eggs", "quark", "plantmilk")),
    ("bakery", ("bread", "rolls", "toast", "croissants", "cakes", "cookies", "wraps", "crispbread")),
    ("meat", ("chicken", "beef", "pork", "sausages", "ham", "salami", "fish", "tofu")),
    ("drinks", ("water", "juice", "soda", "coffee", "tea", "beer", "wine", "energydrinks")),
    ("snacks", ("chips", "chocolate", "candy", "nuts", "popcorn", "crackers", "bars", "gum")),
    ("frozen", ("pizza", "icecream", "vegetables", "fries", "readymeals", "seafood", "berriesfrozen", "dumplings")),
    ("pantry", ("pasta", "rice", "flour", "sugar", "oil", "sauces", "spices", "cereal")),
    ("household", ("detergent", "dishwash", "paper", "bags", "cleaners", "sponges", "foil", "batteries")),
    ("care", ("shampoo", "soap", "toothpaste", "deodorant", "razors", "lotion", "tissues", "cottonpads")),
    ("baby", ("nappies", "formula", "babyfood", "wipes", "babysnacks", "babycare", "bottles", "teethers")),
    ("pet", ("dogfood", "catfood", "litter", "treats", "petcare", "birdseed", "fishfood", "toys")),
)

MODIFIERS: tuple[str, ...] = ("", "cheap", "premium")  # index 0 = no modifier

_SYLLABLES = ("ka", "lo", "mi", "ra", "ve", "zu", "no", "pe", "ti", "sa", "do", "fi", "gu", "ha", "ju", "be")


def department_name(c1: int) -> str:
    """Name of department ``c1`` (1-based)."""
    if c1 <= len(DEPARTMENTS):
        return DEPARTMENTS[c1 - 1][0]
    return f"dept{c1}"


def aisle_name(c1: int, k: int) -> str:
    """Name of the ``k``-th (0-based) aisle of department ``c1`` (1-based)."""
    if c1 <= len(DEPARTMENTS) and k < len(DEPARTMENTS[c1 - 1][1]):
        return DEPARTMENTS[c1 - 1][1][k]
    return f"{department_name(c1)}{k}"


def brand_names(n: int, seed: int) -> list[str]:
    """``n`` distinct pronounceable brand names (index 0 of the result is brand id 1)."""
    rng = np.random.default_rng(seed)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        k = int(rng.integers(2, 4))
        name = "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), size=k))
        if name in seen:
            name = f"{name}{len(names)}"
        seen.add(name)
        names.append(name)
    return names


class Vocabulary:
    """Term ids for query words (1-based; 0 = padding)."""

    def __init__(self, words: list[str]):
        self.term_id: dict[str, int] = {}
        for w in words:
            if w and w not in self.term_id:
                self.term_id[w] = len(self.term_id) + 1

    def terms(self, text: str) -> list[int]:
        return [self.term_id[w] for w in text.split() if w in self.term_id]

    def __len__(self) -> int:
        return len(self.term_id)
