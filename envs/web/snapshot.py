"""Observations: the page's URL, title and accessibility outline, cut to a budget.

The outline is Playwright's `aria_snapshot(mode="ai")`: one element per line, each
actionable one labelled `[ref=eN]`. An outline longer than the budget is shown as a
window of whole lines with a note of what was cut; `scroll` moves the window.
`find_ref` reads a ref back from an outline by role and name, as an agent would.
"""

from __future__ import annotations

import re

__all__ = ["Outline", "find_ref", "refs_in"]

_REF = re.compile(r"\[ref=((?:f\d+)?e\d+)\]")
_NOISE = re.compile(r" \[cursor=pointer\]")
# - link "Red shirt" [ref=e20]  /  - 'link "Price: $5" [ref=e3]'  /  - combobox "Size" [ref=e9]:
_ELEMENT = re.compile(r"""^\s*- '?(?P<role>[\w-]+)(?: "(?P<name>(?:[^"\\]|\\.)*)")?(?P<rest>[^\n]*)$""")


def refs_in(tree: str) -> set[str]:
    """Every ref label in an outline."""
    return set(_REF.findall(tree))


def find_ref(tree: str, role: str, name: str, nth: int = 0) -> str | None:
    """The ref of the `nth` element with this role and exact accessible name, or None.

    Example:
        >>> find_ref('- link "Cart (0)" [ref=e4]:\\n  - /url: /cart', "link", "Cart (0)")
        'e4'
    """
    seen = 0
    for line in tree.splitlines():
        m = _ELEMENT.match(line)
        if not m or m["role"] != role:
            continue
        label = (m["name"] or "").replace('\\"', '"')
        ref = _REF.search(m["rest"])
        if label == name and ref:
            if seen == nth:
                return ref.group(1)
            seen += 1
    return None


class Outline:
    """An outline cut into a window of at most `max_chars` characters of whole lines.

    Args:
        tree: the accessibility snapshot.
        max_chars: the budget of the window (about 4 characters a token).
    """

    def __init__(self, tree: str, max_chars: int):
        self.lines = _NOISE.sub("", tree).splitlines()
        self.max_chars = max_chars
        self.refs = refs_in(tree)

    def window(self, start: int) -> tuple[int, int]:
        """(first, end) line indices of the window that starts at line `start`."""
        start = max(0, min(start, len(self.lines) - 1))
        used, end = 0, start
        while end < len(self.lines) and (end == start or used + len(self.lines[end]) + 1 <= self.max_chars):
            used += len(self.lines[end]) + 1
            end += 1
        return start, end

    def page_down(self, start: int) -> int:
        """Where the window after the one at `start` begins (two lines of overlap)."""
        first, end = self.window(start)
        return first if end >= len(self.lines) else max(first + 1, end - 2)

    def page_up(self, start: int) -> int:
        """Where the window before the one at `start` begins (two lines of overlap)."""
        end = min(start + 2, len(self.lines))
        first, used = end, 0
        while first > 0 and (first == end or used + len(self.lines[first - 1]) + 1 <= self.max_chars):
            first -= 1
            used += len(self.lines[first]) + 1
        return first if first < start else max(0, start - 1)

    def render(self, start: int) -> str:
        first, end = self.window(start)
        text = "\n".join(self.lines[first:end])
        notes = []
        if first > 0:
            notes.append(f"{first} lines above are not shown: scroll up to see them")
        if end < len(self.lines):
            rest = self.lines[end:]
            cut = sum(len(x) + 1 for x in rest)
            notes.append(
                f"{len(rest)} more lines (~{cut} characters, {len(refs_in(chr(10).join(rest)))} refs) are cut "
                "below: scroll down to see them"
            )
        if notes:
            text += f"\n[Outline lines {first + 1}-{end} of {len(self.lines)}; " + "; ".join(notes) + ".]"
        return text
