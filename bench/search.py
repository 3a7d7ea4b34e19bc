"""Benchmark of the search environment's index: build time and query latency at 10k and 100k documents.

Documents come from the generated world (scaled up, then cut to the exact size). For each
size it prints the time to generate and index the corpus, to save the index to the disk
cache and to load it back, and the latency of a query, p50 and p99, over two kinds of
queries an agent writes: a name plus a keyword ("Vorel Press founded") and a whole
question. "retrieval" is analysing the query and ranking with BM25; "search tool" adds
the snippets of the top 5 results, as the agent sees them. Goal: p50 <= 5 ms at 100k.

    python bench/search.py            # 10k and 100k documents (about 1-2 minutes)
    python bench/search.py --quick    # 2k and 10k documents, fewer queries (seconds)
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from agentgym.envs.search.corpus import Corpus
from agentgym.envs.search.documents import render_world
from agentgym.envs.search.index import SearchIndex
from agentgym.envs.search.snippets import make_snippet
from agentgym.envs.search.tasks import generated_tasks
from agentgym.envs.search.world import ATTRIBUTES, BASE_COUNTS, RELATIONS, generate_world
from goals import load_line

GOAL_P50_MS = 5.0


def queries_for(world, n: int, seed: int = 0) -> list[str]:
    """Half "name keyword" queries, half whole questions, drawn from the world."""
    rng = random.Random(seed)
    entities = rng.sample(world.entities, n // 2)
    short = []
    for e in entities:
        keywords = [RELATIONS[r].keyword for r in e.rels] + [ATTRIBUTES[e.kind].keyword]
        short.append(f"{e.name} {rng.choice(keywords)}")
    tasks = generated_tasks(world, "test", (1, 2, 3, 4, 5), {"train": 0, "test": n - len(short)}, seed)
    return short + [t.metadata["question"] for t in tasks]


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def bench_size(size: int, n_queries: int, k: int) -> dict[str, float]:
    # about 2,400 documents per unit of scale; a little more, then cut to the exact size
    per_scale = sum(BASE_COUNTS.values()) * 1.1
    start = time.perf_counter()
    world = generate_world(seed=0, scale=size / per_scale * 1.05)
    full = render_world(world)
    corpus = Corpus(full.docs[:size], name=f"bench-{size}")
    generate_s = time.perf_counter() - start
    if len(corpus) < size:
        raise RuntimeError(f"the world has only {len(corpus)} documents, {size} wanted")

    start = time.perf_counter()
    index = SearchIndex.build(corpus)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        index.save(Path(tmp) / "index")
        save_s = time.perf_counter() - start
        start = time.perf_counter()
        index = SearchIndex.load(Path(tmp) / "index")
        load_s = time.perf_counter() - start

        queries = queries_for(world, n_queries)
        for q in queries[:20]:  # warm up page cache and the stemmer's memo
            index.search(index.query_terms(q), k)
        retrieval, tool = [], []
        for q in queries:
            t0 = time.perf_counter()
            terms = index.query_terms(q)
            hits, _ = index.search(terms, k)
            t1 = time.perf_counter()
            term_set = set(terms)
            for hit in hits:
                make_snippet(corpus.docs[hit.position].text, term_set, index.term_weight, index.analyzer)
            t2 = time.perf_counter()
            retrieval.append(t1 - t0)
            tool.append(t2 - t0)
    r50, r99 = percentiles(retrieval)
    t50, t99 = percentiles(tool)
    return {
        "docs": len(corpus),
        "generate_s": generate_s,
        "build_s": build_s,
        "save_s": save_s,
        "load_s": load_s,
        "retrieval_p50_ms": r50,
        "retrieval_p99_ms": r99,
        "tool_p50_ms": t50,
        "tool_p99_ms": t99,
        "mean_query_terms": statistics.mean(len(index.query_terms(q)) for q in queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k and 10k documents and 200 queries (a few seconds)")
    parser.add_argument("--sizes", type=int, nargs="+", help="corpus sizes in documents (default 10000 100000)")
    parser.add_argument("--queries", type=int, help="queries per size (default 1000, 200 with --quick)")
    parser.add_argument("-k", type=int, default=5, help="results per query")
    args = parser.parse_args()
    sizes = args.sizes or ([2_000, 10_000] if args.quick else [10_000, 100_000])
    n_queries = args.queries or (200 if args.quick else 1000)

    print(f"search index benchmark: bm25s, {n_queries} queries per size, k={args.k}")
    header = (
        f"{'docs':>8} {'generate s':>10} {'build s':>8} {'save s':>7} {'load s':>7} "
        f"{'retrieval p50/p99 ms':>21} {'search tool p50/p99 ms':>23}"
    )
    print(header)
    results = []
    for size in sizes:
        r = bench_size(size, n_queries, args.k)
        results.append(r)
        print(
            f"{r['docs']:>8,} {r['generate_s']:>10.2f} {r['build_s']:>8.2f} {r['save_s']:>7.2f} {r['load_s']:>7.2f} "
            f"{r['retrieval_p50_ms']:>10.2f} / {r['retrieval_p99_ms']:<8.2f} {r['tool_p50_ms']:>11.2f} / "
            f"{r['tool_p99_ms']:<8.2f}",
            flush=True,
        )
    largest = results[-1]
    verdict = "met" if largest["retrieval_p50_ms"] <= GOAL_P50_MS else "MISSED"
    print(
        f"goal p50 <= {GOAL_P50_MS:g} ms at {largest['docs']:,} documents: {verdict} "
        f"(retrieval p50 {largest['retrieval_p50_ms']:.2f} ms, with snippets {largest['tool_p50_ms']:.2f} ms; "
        f"{largest['mean_query_terms']:.1f} terms a query on average)"
    )

    print(load_line())


if __name__ == "__main__":
    main()
