"""A document collection: documents by id, a content fingerprint, and pages for reading.

The same `Corpus` holds the generated world's documents and a real corpus loaded from
JSONL; the index, the tools and the tasks see no difference.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Corpus", "Document", "paginate"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class Document:
    """One document: a unique `id`, a `title` (may be empty) and its `text`."""

    id: str
    title: str
    text: str


class Corpus:
    """An ordered, immutable collection of documents with unique ids.

    Args:
        docs: the documents; their order is the index's document order.
        name: where the documents came from (a path, or "generated world seed=0").

    Raises:
        ValueError: if two documents share an id.
    """

    def __init__(self, docs: Sequence[Document], name: str = ""):
        self.docs: tuple[Document, ...] = tuple(docs)
        self.name = name
        self.position: dict[str, int] = {}
        for i, doc in enumerate(self.docs):
            if self.position.setdefault(doc.id, i) != i:
                raise ValueError(f"{name or 'corpus'}: document id {doc.id!r} appears twice; ids must be unique")
        self._pages: dict[tuple[int, int], list[str]] = {}

    def __len__(self) -> int:
        return len(self.docs)

    def get(self, doc_id: str) -> Document | None:
        """The document with this id, or None."""
        i = self.position.get(doc_id)
        return None if i is None else self.docs[i]

    @cached_property
    def by_title(self) -> dict[str, list[str]]:
        """Document ids by case-folded title (titles need not be unique)."""
        out: dict[str, list[str]] = {}
        for doc in self.docs:
            out.setdefault(doc.title.strip().casefold(), []).append(doc.id)
        return out

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of every id, title and text, in order: the key of the on-disk index cache."""
        h = hashlib.sha256()
        for doc in self.docs:
            for part in (doc.id, doc.title, doc.text):
                data = part.encode("utf-8", "surrogatepass")
                h.update(len(data).to_bytes(8, "little"))
                h.update(data)
        return h.hexdigest()

    def pages(self, doc_id: str, page_chars: int) -> list[str]:
        """The document's text split into pages of at most `page_chars` characters (memoised)."""
        i = self.position[doc_id]
        key = (i, page_chars)
        if key not in self._pages:
            self._pages[key] = paginate(self.docs[i].text, page_chars)
        return self._pages[key]


def paginate(text: str, page_chars: int) -> list[str]:
    """Split `text` into pages of at most `page_chars` characters.

    Pages break between paragraphs where possible, then between sentences, then between
    words; a text that fits is one page. An empty text is one empty page.
    """
    if page_chars < 1:
        raise ValueError(f"page_chars must be >= 1, got {page_chars}")
    units: list[tuple[str, str]] = []  # (separator before it, text no longer than page_chars)
    for para in text.split("\n\n"):
        parts = [para] if len(para) <= page_chars else _split_long(para, page_chars)
        units.extend(("\n\n" if j == 0 else " ", part) for j, part in enumerate(parts))
    pages: list[str] = []
    current = ""
    for sep, part in units:
        if not current:
            current = part
        elif len(current) + len(sep) + len(part) > page_chars:
            pages.append(current)
            current = part
        else:
            current += sep + part
    pages.append(current)
    return pages


def _split_long(paragraph: str, limit: int) -> list[str]:
    out: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit + 1)
            cut = cut if cut > 0 else limit
            out.append(sentence[:cut].rstrip())
            sentence = sentence[cut:].lstrip()
        if sentence:
            out.append(sentence)
    return out
