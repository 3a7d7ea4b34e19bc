"""SearchEnv: answer (multi-hop) questions with a search tool over a local BM25 index.

The deep-search setting of Search-R1, ReSum and MiroThinker, offline: `search(query, k)`
returns ranked documents with query-biased snippets, `open(doc_id, page)` reads a
document page by page, `<answer>` ends the episode. By default the documents and
questions come from a generated fictional world (answers cannot come from memory, and a
question's hop count is the number of searches it needs); `corpus=` and `questions=` load
real JSONL data instead.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

from agentgym.envs.search.corpus import Corpus
from agentgym.envs.search.data import Question, cached_corpus, load_questions
from agentgym.envs.search.documents import world_corpus
from agentgym.envs.search.index import SearchIndex, get_index
from agentgym.envs.search.scoring import best_scores
from agentgym.envs.search.snippets import make_snippet
from agentgym.envs.search.tasks import generated_tasks, question_tasks
from agentgym.envs.search.world import cached_world

from agentgym.env import Outcome, Task
from agentgym.parsing import clip
from agentgym.tool_env import ToolEnv, ToolError
from agentgym.tools import tool

DEFAULT_HOPS = (1, 2, 3, 4, 5)


class SearchEnv(ToolEnv):
    """Answer multi-hop questions by searching a document collection (BM25) and reading documents.

    Args:
        hops: hop counts of the questions (an int or a sequence): generated questions are
            spread evenly over them; loaded questions are filtered by them. Default: 1-5
            for the generated world, every question for loaded ones.
        corpus: path of a JSONL corpus (`id`, `title`, `text`); needs `questions`.
        questions: path of a JSONL question file (`question`, `answer`/`answers`, optional
            `supporting_facts`/`supporting_titles`); needs `corpus`.
        world_seed: seed of the generated world (the corpus); `task_seed` picks the questions.
        world_scale: size of the generated world (1.0: about 2,400 documents).
        num_train, num_test: generated tasks per split.
        test_fraction: share of loaded questions in the test split.
        page_chars: characters per page of `open`.
        snippet_chars: length of a search result's snippet.
        max_k: the most results one search may ask for.
        max_query_chars: the longest query accepted.
        cache_dir: folder of the on-disk index cache (default `$AGENTGYM_CACHE/search` or
            `~/.cache/agentgym/search`).
        **kwargs: `TextEnv` arguments (max_turns, split, task_seed, render_mode).

    Example:
        >>> env = gymnasium.make("agentgym/Search-3hop-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs, *_ = env.step('<tool_call>{"name": "search", "arguments": {"query": "Vorel Press founded"}}</tool_call>')
    """

    default_max_turns = 10

    def __init__(
        self,
        hops: int | Sequence[int] | None = None,
        corpus: str | os.PathLike | None = None,
        questions: str | os.PathLike | None = None,
        world_seed: int = 0,
        world_scale: float = 1.0,
        num_train: int = 1000,
        num_test: int = 200,
        test_fraction: float = 0.2,
        page_chars: int = 800,
        snippet_chars: int = 240,
        max_k: int = 10,
        max_query_chars: int = 500,
        cache_dir: str | os.PathLike | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if (corpus is None) != (questions is None):
            raise ValueError("pass both corpus= and questions= (JSONL paths) to use real data, or neither")
        if isinstance(hops, int):
            hops = (hops,)
        if hops is not None:
            hops = tuple(dict.fromkeys(hops))
            if not hops or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hops):
                raise ValueError(f"hops must be positive integers, got {hops!r}")
        if not 0.0 <= test_fraction <= 1.0:
            raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
        if min(page_chars, snippet_chars, max_k, max_query_chars) < 1 or min(num_train, num_test) < 0:
            raise ValueError(
                "page_chars, snippet_chars, max_k and max_query_chars must be >= 1, num_train/num_test >= 0"
            )
        self.hops = hops
        self.corpus_path = corpus
        self.world_seed = world_seed
        self.world_scale = world_scale
        self.counts = {"train": num_train, "test": num_test}
        self.test_fraction = test_fraction
        self.page_chars = page_chars
        self.snippet_chars = snippet_chars
        self.max_k = max_k
        self.max_query_chars = max_query_chars
        self.cache_dir = cache_dir
        # Questions are small and their errors are configuration errors: load them now.
        # The corpus may be large: it is loaded (and indexed) on the first reset.
        self.questions_path = questions
        self.questions: list[Question] | None = load_questions(questions) if questions is not None else None
        self._checked_titles = False
        if self.questions is not None and hops is not None and not any(q.hops in hops for q in self.questions):
            found = sorted({q.hops for q in self.questions if q.hops is not None})
            raise ValueError(
                f"{questions} has no question with hops in {list(hops)}; its hop counts are {found or 'unknown'} "
                "(a question's hop count is its 'hops' field or its number of supporting titles)"
            )
        if corpus is not None and not os.path.isfile(corpus):
            raise FileNotFoundError(f"corpus file {corpus} does not exist")
        self._corpus: Corpus | None = None
        self._index: SearchIndex | None = None
        self.gold: list[set[str]] = []
        self.retrieved: set[str] = set()
        self.opened: set[str] = set()

    # ------------------------------------------------------------ data

    @property
    def corpus(self) -> Corpus:
        """The document collection (generated or loaded), memoised per process."""
        if self._corpus is None:
            if self.corpus_path is not None:
                self._corpus = cached_corpus(self.corpus_path)
            else:
                self._corpus = world_corpus(self.world_seed, self.world_scale)
        return self._corpus

    @property
    def index(self) -> SearchIndex:
        """The BM25 index of the corpus, built or loaded on first use."""
        if self._index is None:
            self._index = get_index(self.corpus, self.cache_dir)
        return self._index

    def make_tasks(self, split: str) -> list[Task]:
        if self.questions is not None:
            return question_tasks(self.questions, split, self.test_fraction, self.task_seed, self.hops)
        world = cached_world(self.world_seed, self.world_scale)
        return generated_tasks(world, split, self.hops or DEFAULT_HOPS, self.counts, self.task_seed)

    def setup(self, task: Task) -> str:
        if self._index is None:  # build or load the index now, not during the first turn
            self._index = get_index(self.corpus, self.cache_dir)
        if "supporting_doc_ids" in task.metadata:
            self.gold = [{d} for d in task.metadata["supporting_doc_ids"]]
        else:
            titles = self.corpus.by_title
            self._warn_missing_titles(titles)
            self.gold = [set(titles.get(t.strip().casefold(), ())) for t in task.metadata["supporting_titles"]]
        self.retrieved = set()
        self.opened = set()
        return task.instruction

    def _warn_missing_titles(self, titles: dict[str, list[str]]) -> None:
        """Warn once if supporting titles are not in the corpus (e.g. a corpus subset): they can never be found."""
        if self._checked_titles:
            return
        self._checked_titles = True
        missing = sorted(
            {t for q in self.questions or () for t in q.supporting_titles if t.strip().casefold() not in titles}
        )
        if missing:
            warnings.warn(
                f"{len(missing)} supporting title(s) of {self.questions_path} are not titles of any document in "
                f"{self.corpus_path} (e.g. {missing[:3]}); supporting_recall cannot reach 1 on their questions",
                stacklevel=3,
            )

    # ------------------------------------------------------------ tools

    @tool
    def search(self, query: str, k: int = 5) -> str:
        """Search the documents; returns the top k results with their doc ids, titles and snippets.

        Args:
            query: A few keywords, e.g. a name and what you want to know about it.
            k: How many results to return, from 1 to 10.
        """
        text = query.strip()
        if not text:
            raise ToolError("the query is empty: search with a few keywords, e.g. a name and what you want to know")
        if len(query) > self.max_query_chars:
            raise ToolError(
                f"the query is {len(query)} characters long; the limit is {self.max_query_chars}: "
                "search with a few keywords, not a whole text"
            )
        if not 1 <= k <= self.max_k:
            raise ToolError(f"k must be between 1 and {self.max_k}, got {k}")
        index = self.index
        terms = index.query_terms(text)
        if not terms:
            raise ToolError(
                f"the query {clip(text)!r} has no searchable words (only stop words or punctuation): "
                "search with names or keywords"
            )
        hits, matching = index.search(terms, k)
        if not hits:
            return f'No document matches "{clip(text)}". Try other keywords or another spelling.'
        term_set = set(terms)
        lines = [f'Results for "{clip(text)}" ({len(hits)} of {matching} matching documents):']
        for rank, hit in enumerate(hits, 1):
            doc = self.corpus.docs[hit.position]
            self.retrieved.add(doc.id)
            snippet = make_snippet(doc.text, term_set, index.term_weight, index.analyzer, self.snippet_chars)
            lines.append(f"{rank}. [{doc.id}] {doc.title or '(untitled)'}\n   {snippet}")
        return "\n".join(lines)

    @tool
    def open(self, doc_id: str, page: int = 1) -> str:
        """Read a document by its id, one page at a time.

        Args:
            doc_id: The id of a document, as shown in brackets in the search results.
            page: The page to read, from 1; long documents have several pages.
        """
        doc = self.corpus.get(doc_id.strip())
        if doc is None:
            example = next(iter(self.retrieved), self.corpus.docs[0].id)
            raise ToolError(
                f"no document has the id {clip(doc_id)!r}: use an id shown in brackets in the search results, "
                f"like {example!r}"
            )
        pages = self.corpus.pages(doc.id, self.page_chars)
        if not 1 <= page <= len(pages):
            raise ToolError(f"page {page} is out of range: document {doc.id} has {len(pages)} page(s)")
        self.opened.add(doc.id)
        head = f"[{doc.id}] {doc.title or '(untitled)'} (page {page} of {len(pages)})"
        tail = f"\n(page {page} of {len(pages)}: open page {page + 1} to read on)" if page < len(pages) else ""
        return f"{head}\n\n{pages[page - 1]}{tail}"

    # ------------------------------------------------------------ answers and info

    def on_answer(self, answer: str) -> Outcome:
        if not answer.strip():
            return Outcome(
                "Invalid answer: the answer is empty. Write it as <answer>YOUR ANSWER</answer>.", invalid=True
            )
        task = self.current_task
        golds = task.metadata["answers"]
        em, f1 = best_scores(answer, golds)
        info = {"answer": answer, "gold_answers": list(golds), "exact_match": em, "f1": f1}
        if task.metadata.get("hops") is not None:
            info["hops"] = task.metadata["hops"]
        verdict = "correct" if em else "incorrect"
        return Outcome(f"Your answer is {verdict}.", reward=float(em), terminated=True, success=em, info=info)

    def transition(self, action: str) -> Outcome:
        outcome = super().transition(action)
        outcome.info = {**(outcome.info or {}), **self.retrieval_info()}
        return outcome

    def retrieval_info(self) -> dict[str, Any]:
        """Which supporting documents this episode has retrieved (in search results) and opened.

        `supporting_recall` is the share of supporting documents found by either.
        """
        gold_ids = sorted(set().union(*self.gold)) if self.gold else []
        found = sum(1 for ids in self.gold if ids & (self.retrieved | self.opened))
        return {
            "supporting_docs": gold_ids,
            "supporting_retrieved": [d for d in gold_ids if d in self.retrieved],
            "supporting_opened": [d for d in gold_ids if d in self.opened],
            "supporting_recall": found / len(self.gold) if self.gold else 0.0,
        }
