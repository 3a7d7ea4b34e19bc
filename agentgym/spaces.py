"""Gymnasium spaces for text agents: any Unicode string, not just alphanumerics."""

from __future__ import annotations

import string
from typing import Any

from gymnasium.spaces import Text

# Characters `sample()` draws from: printable ASCII (tags, JSON punctuation, spaces,
# newlines) plus a few multi-byte characters, so a random action exercises the parser.
_SAMPLE_CHARSET = string.printable + "éüßçñ中文字🙂→€\u200b"


class UnicodeText(Text):
    """A `Text` space whose members are *any* Python string up to `max_length` characters.

    Gymnasium's `Text` only accepts characters from a fixed charset (alphanumerics by
    default), which rejects every real observation (spaces, punctuation, newlines).
    `contains` here checks only the type and the length; `sample` draws from printable
    ASCII plus a few non-ASCII characters and keeps samples short.

    Example:
        >>> space = UnicodeText(max_length=100)
        >>> "Hello, wörld! <answer>42</answer>" in space
        True
    """

    def __init__(self, max_length: int = 1_000_000, *, min_length: int = 0, seed: Any = None):
        super().__init__(max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is not None or probability is not None:
            return super().sample(mask=mask, probability=probability)
        hi = min(self.max_length, max(self.min_length, 64))
        length = int(self.np_random.integers(self.min_length, hi + 1))
        idx = self.np_random.integers(0, len(self._char_list), size=length)
        return "".join(self._char_list[i] for i in idx)

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )
