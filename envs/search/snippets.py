"""Query-biased snippets: the passage of a document that best matches the query, matched words in bold.

The best sentence is the one whose distinct matched terms weigh most (by idf), so a query
naming an entity and a relation ("Dempsk Press founded") shows the sentence stating that
relation rather than the one that only repeats the name.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agentgym.envs.search.index import Analyzer

__all__ = ["make_snippet"]

_SENTENCES = re.compile(r"[^.!?\n]+(?:[.!?]+[\"')\]]*|$)")
_WORD = re.compile(r"[^\W_]+")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCES.findall(text) if s.strip()]


def make_snippet(
    text: str, terms: set[str], weight: Callable[[str], float], analyzer: Analyzer, max_chars: int = 240
) -> str:
    """The passage of `text` that best matches the query `terms`, at most ~`max_chars` long.

    Args:
        text: the document text.
        terms: the query's index terms (stems).
        weight: a term's weight (its idf).
        analyzer: the index's analyser, so words match exactly as they do in the index.
        max_chars: length budget of the passage (before the bold markers).
    """
    sentences = _sentences(text)
    if not sentences:
        return ""
    scored = []
    for i, sentence in enumerate(sentences):
        stems = analyzer.stems(analyzer.words(sentence))
        matched = {s for s in stems if s in terms}
        scored.append((sum(weight(s) for s in matched), -i))
    order = sorted(range(len(sentences)), key=lambda i: scored[i], reverse=True)
    chosen = [order[0]]
    # a short best sentence leaves room for the next best matching one
    for i in order[1:]:
        if scored[i][0] <= 0:
            break
        if sum(len(sentences[j]) + 1 for j in chosen) + len(sentences[i]) <= max_chars:
            chosen.append(i)
        break
    chosen.sort()
    passage = ""
    for j, i in enumerate(chosen):
        gap = j > 0 and i != chosen[j - 1] + 1
        passage += (" ... " if gap else " " if j else "") + sentences[i]
    snippet = _clip_and_mark(passage, terms, analyzer, max_chars)
    return snippet if chosen[0] == 0 or snippet.startswith("...") else "... " + snippet


def _clip_and_mark(passage: str, terms: set[str], analyzer: Analyzer, max_chars: int) -> str:
    # each word is analysed on its own: folding can change a text's length, never a word's identity
    hits = [m.span() for m in _WORD.finditer(passage) if not terms.isdisjoint(analyzer.terms(m.group()))]
    start, end, prefix, suffix = 0, len(passage), "", ""
    if len(passage) > max_chars:
        first = hits[0][0] if hits else 0
        start = max(0, first - max_chars // 3)
        if start > 0:
            space = passage.rfind(" ", 0, start)
            start = space + 1 if space >= 0 else start
            prefix = "..."
        end = min(len(passage), start + max_chars)
        if end < len(passage):
            space = passage.rfind(" ", start, end)
            end = space if space > start else end
            suffix = "..."
    out, pos = [], start
    for a, b in hits:
        if a < start or b > end:
            continue
        out.append(passage[pos:a] + "**" + passage[a:b] + "**")
        pos = b
    out.append(passage[pos:end])
    return prefix + "".join(out).strip() + suffix
