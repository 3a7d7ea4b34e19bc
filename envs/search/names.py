"""Pronounceable nonsense names, unique across a world and never an English stop word.

Names are drawn from syllables, so no model knows them; first names and surnames come
from shared pools, so many people share one or the other, as in a real corpus.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from agentgym.envs.search.index import STOPWORDS

__all__ = ["NameMaker", "UniqueNames", "cap"]

_ONSETS = "b br c d dr f g gr h j k kr l m n p pr r s sk st t tr v w z th sh".split()  # noqa: SIM905
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "a", "e", "i", "o", "u", "ae", "ai", "ou"]
_CODAS = ["", "", "", "n", "r", "l", "s", "m", "nd", "rn", "sk", "th", "x", "ld", "rt", "nt"]
_FIRST_ENDS = ["", "", "n", "l", "s", "r", "ne", "ra"]
_SURNAME_ENDS = ["sen", "ley", "ford", "wick", "ard", "ow", "ing", "er", "by", "ton"]
_CITY_ENDS = "holt mere ford by wick stead haven port gate moor ton dale bridge fell burgh".split()  # noqa: SIM905
_REGION_ENDS = ["ia", "and", "mark", "ovia", "eth", "ar", "ene"]
_LANGUAGE_ENDS = ["ic", "ish", "ese", "i", "an"]


def cap(word: str) -> str:
    return word[:1].upper() + word[1:]


def _word(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)]
    return "".join(parts) + rng.choice(_CODAS)


def _syllables(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS[:13]) for _ in range(count))


def _surname(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return _word(rng, 2)
    return _syllables(rng, rng.choice((1, 2))) + rng.choice(_SURNAME_ENDS)


def _no_stopword(make: Callable[[], str]) -> Callable[[], str]:
    """`make`, redrawn while it gives an English stop word ("Being"): the index drops those."""

    def draw() -> str:
        while True:
            word = make()
            if word.lower() not in STOPWORDS:
                return word

    return draw


class UniqueNames:
    """Draws names that are unique across the whole world."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def unique(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            name = make()
            if name not in self.used:
                self.used.add(name)
                return name
        raise RuntimeError("could not draw a unique name: the name space is exhausted")

    @staticmethod
    def pool(size: int, make: Callable[[], str]) -> list[str]:
        # Pools of name parts (first names, surnames) are shared, so many people share a
        # first name or a surname: realistic, and a harder retrieval problem.
        out: dict[str, None] = {}
        while len(out) < size:
            out.setdefault(make())
        return list(out)


class NameMaker:
    """Draws the names of a world's people, cities, regions and languages from one RNG."""

    def __init__(self, rng: random.Random, names: UniqueNames, people: int, regions: int):
        self.rng = rng
        self.names = names
        first = _no_stopword(lambda: cap(_syllables(rng, 2) + rng.choice(_FIRST_ENDS)))
        self.firsts = names.pool(max(60, people // 6), first)
        self.surnames = names.pool(max(80, people // 3), _no_stopword(lambda: cap(_surname(rng))))
        self.languages = names.pool(regions, _no_stopword(lambda: cap(_word(rng, 2) + rng.choice(_LANGUAGE_ENDS))))
        self._region = _no_stopword(lambda: cap(_word(rng, 2) + rng.choice(_REGION_ENDS)))
        self._city = _no_stopword(lambda: cap(_word(rng, 2) + rng.choice(_CITY_ENDS)))

    def region(self) -> str:
        return self.names.unique(self._region)

    def city(self) -> str:
        return self.names.unique(self._city)

    def person(self) -> str:
        rng = self.rng
        return self.names.unique(lambda: f"{rng.choice(self.firsts)} {rng.choice(self.surnames)}")
