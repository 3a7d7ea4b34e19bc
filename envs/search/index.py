"""BM25 retrieval over a `Corpus` (bm25s), cached on disk and in memory.

Text is analysed the same way for documents and queries: case-folded, accents removed,
split on non-alphanumerics, English stop words dropped, Snowball-stemmed (so "founder"
finds "founded"). A document's title is indexed twice with its text, the usual field
boost that puts an entity's own page above pages that merely mention it.

An index is built once per corpus content and saved under
`<cache>/<sha256 of corpus and analyser>/`; the build writes to a temporary folder and
renames it into place, so concurrent processes never read a half-written index, and
a second process (or env) loads it instead of building. Within a process, every env on
the same corpus shares one in-memory index.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from agentgym.envs.search.corpus import Corpus

__all__ = ["Analyzer", "Hit", "SearchIndex", "default_cache_dir", "get_index"]

#: Bump when the analyser or index layout changes: it is part of the cache key.
INDEX_VERSION = "1"
BM25_PARAMS = {"k1": 1.2, "b": 0.75, "method": "lucene"}

_WORD = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(
    (  # noqa: SIM905 (a word list reads best as text)
        "a about above after again against all am an and any are as at be because been before being below "
        "between both but by can could did do does doing down during each few for from further had has "
        "have having he her here hers herself him himself his how i if in into is it its itself just me "
        "more most my myself no nor not now of off on once only or other our ours ourselves out over own "
        "same she should so some such than that the their theirs them themselves then there these they "
        "this those through to too under until up very was we were what when where which while who whom "
        "why will with would you your yours yourself yourselves"
    ).split()
)


def _fold(text: str) -> str:
    text = text.casefold()
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


class Analyzer:
    """Turns text into index terms: fold case and accents, split, drop stop words, stem.

    Stems are memoised per word, so analysing a large corpus stems each distinct word once.
    """

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("english")
        self._stems: dict[str, str | None] = {}

    def words(self, text: str) -> list[str]:
        """The folded words of `text`, stop words included."""
        return _WORD.findall(_fold(text))

    def stems(self, words: list[str]) -> list[str | None]:
        """The stem of each word; None for stop words."""
        cache = self._stems
        new = [w for w in set(words) if w not in cache]
        if new:
            for w, s in zip(new, self._stemmer.stemWords(new), strict=True):
                cache[w] = None if w in STOPWORDS else s
        return [cache[w] for w in words]

    def terms(self, text: str) -> list[str]:
        """The index terms of `text`, in order (stop words removed)."""
        return [s for s in self.stems(self.words(text)) if s is not None]


@dataclass(frozen=True, slots=True)
class Hit:
    """A ranked result: the document's position in the corpus and its BM25 score."""

    position: int
    score: float


class SearchIndex:
    """A BM25 index of a corpus. Build with `SearchIndex.build` or get a cached one with `get_index`.

    Attributes:
        source: "built" (indexed in this process) or "disk" (loaded from the on-disk cache).
        seconds: time the build or the load took.
    """

    def __init__(self, retriever: bm25s.BM25, num_docs: int, source: str, seconds: float):
        self.retriever = retriever
        self.vocab: dict[str, int] = retriever.vocab_dict
        self.num_docs = num_docs
        self.source = source
        self.seconds = seconds
        self.analyzer = Analyzer()
        indptr = np.asarray(retriever.scores["indptr"])
        df = np.diff(indptr).astype(np.float64)
        # Robertson-Sparck Jones idf, used to weigh matched words when choosing snippets.
        self.idf = np.log(1.0 + (num_docs - df + 0.5) / (df + 0.5))

    @classmethod
    def build(cls, corpus: Corpus) -> SearchIndex:
        """Index every document of `corpus` (title twice, then text)."""
        start = time.perf_counter()
        analyzer = Analyzer()
        vocab: dict[str, int] = {}
        corpus_ids: list[list[int]] = []
        for doc in corpus.docs:
            terms = analyzer.terms(f"{doc.title}\n{doc.title}\n{doc.text}")
            corpus_ids.append([vocab.setdefault(t, len(vocab)) for t in terms])
        retriever = bm25s.BM25(**BM25_PARAMS)
        retriever.index((corpus_ids, vocab), show_progress=False)
        return cls(retriever, len(corpus), "built", time.perf_counter() - start)

    def save(self, path: Path) -> None:
        """Write the index to the folder `path` (which must not exist yet), atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self.retriever.save(str(tmp), show_progress=False)
            (tmp / "agentgym.json").write_text(json.dumps({"num_docs": self.num_docs, "version": INDEX_VERSION}))
            try:
                os.rename(tmp, path)
            except OSError:
                if not (path / "agentgym.json").exists():
                    raise
                # another process saved the same index first: theirs is as good as ours
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, path: Path) -> SearchIndex:
        """Load an index saved by `save` (arrays memory-mapped)."""
        start = time.perf_counter()
        meta = json.loads((path / "agentgym.json").read_text())
        retriever = bm25s.BM25.load(str(path), mmap=True, show_progress=False)
        return cls(retriever, int(meta["num_docs"]), "disk", time.perf_counter() - start)

    def query_terms(self, query: str) -> list[str]:
        """The distinct index terms of `query`, in order."""
        return list(dict.fromkeys(self.analyzer.terms(query)))

    def search(self, terms: list[str], k: int) -> tuple[list[Hit], int]:
        """The top `k` documents for these terms, best first, and how many documents match any term.

        Ties are broken by corpus order, so results are deterministic.
        """
        ids = [self.vocab[t] for t in terms if t in self.vocab]
        if not ids:
            return [], 0
        scores = self.retriever.get_scores_from_ids(ids)
        matching = int(np.count_nonzero(scores))
        k = min(k, matching)
        if k == 0:
            return [], 0
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        return [Hit(int(i), float(scores[i])) for i in top[:k]], matching

    def term_weight(self, term: str) -> float:
        """The idf of an index term (0 for terms the corpus does not have)."""
        i = self.vocab.get(term)
        return float(self.idf[i]) if i is not None and i < len(self.idf) else 0.0


def default_cache_dir() -> Path:
    """`$AGENTGYM_CACHE/search`, else `~/.cache/agentgym/search`."""
    root = os.environ.get("AGENTGYM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "agentgym") / "search"


_memory: dict[str, SearchIndex] = {}
_lock = threading.Lock()


def index_key(corpus: Corpus) -> str:
    """The cache key of a corpus's index: its content, the analyser and the BM25 parameters."""
    params = json.dumps({"v": INDEX_VERSION, "bm25": BM25_PARAMS, "stopwords": len(STOPWORDS)}, sort_keys=True)
    return hashlib.sha256(f"{corpus.fingerprint}:{params}".encode()).hexdigest()[:32]


def get_index(corpus: Corpus, cache_dir: str | os.PathLike | None = None) -> SearchIndex:
    """The index of `corpus`: from this process's memory, else from the disk cache, else built and saved.

    Args:
        corpus: the documents.
        cache_dir: folder of the on-disk cache (default: `default_cache_dir()`).

    A cache that cannot be written (read-only disk) is reported with a warning; the index
    still works from memory.
    """
    key = index_key(corpus)
    with _lock:
        cached = _memory.get(key)
        if cached is not None:
            return cached
        path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = path / key
        index = None
        if (path / "agentgym.json").exists():
            try:
                index = SearchIndex.load(path)
                if index.num_docs != len(corpus):
                    raise ValueError(f"it has {index.num_docs} documents, the corpus {len(corpus)}")
            except Exception as exc:
                warnings.warn(f"search index cache {path} is unreadable ({exc}); rebuilding it", stacklevel=2)
                shutil.rmtree(path, ignore_errors=True)
                index = None
        if index is None:
            index = SearchIndex.build(corpus)
            try:
                index.save(path)
            except OSError as exc:
                warnings.warn(f"could not save the search index to {path} ({exc}); it stays in memory", stacklevel=2)
        _memory[key] = index
        return index


def clear_memory_cache() -> None:
    """Forget the in-process indexes (the disk cache stays): the next `get_index` loads from disk."""
    with _lock:
        _memory.clear()
