"""Search: multi-hop question answering with a local BM25 search tool (generated world or real JSONL data)."""

from agentgym.registration import register as _register

#: Hop counts with their own env id (`Search-3hop-v0`); `Search-v0` mixes them.
HOP_VARIANTS = (1, 2, 3, 4, 5)


def register() -> None:
    _register(
        "Search-v0",
        "agentgym.envs.search.env:SearchEnv",
        description="Multi-hop questions (1-5 hops, mixed) over a generated world with a BM25 search tool; "
        "or real JSONL data (corpus=, questions=).",
    )
    for h in HOP_VARIANTS:
        _register(
            f"Search-{h}hop-v0",
            "agentgym.envs.search.env:SearchEnv",
            description=f"Search with {h}-hop questions: at least {h} search(es) and an answer.",
            hops=h,
        )
