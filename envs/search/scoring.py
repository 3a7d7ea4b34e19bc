"""Answer scoring as in SQuAD and HotpotQA: exact match and token F1 after normalisation."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable

__all__ = ["best_scores", "exact_match", "f1_score", "normalize_answer"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation) | {"‘", "’", "“", "”", "–", "—"}


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace.

    Example:
        >>> normalize_answer("The  Dempsk Press!")
        'dempsk press'
        >>> normalize_answer("48,200")
        '48200'
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(c for c in text if c not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> bool:
    """Whether the normalised strings are equal."""
    return normalize_answer(prediction) == normalize_answer(gold)


def f1_score(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall between the normalised strings."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_scores(prediction: str, golds: Iterable[str]) -> tuple[bool, float]:
    """(exact match, F1) against the best-matching of several gold answers."""
    golds = list(golds)
    em = any(exact_match(prediction, g) for g in golds)
    f1 = max((f1_score(prediction, g) for g in golds), default=0.0)
    return em, f1
