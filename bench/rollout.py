"""Generation and multi-turn rollout throughput of the embedded model, prefix cache on and off.

Prints, as a table per batch size B (= concurrent episodes):
  (a) raw: tokens/s of one batched `HFPolicy.generate` call on B first-turn prompts
      (full prefill, no cache), with the rollout's sampling parameters;
  (b) rollout: tokens/s of `run_episodes` on B episodes of GuessNumber-16 at concurrency
      B, with the prefix KV cache on and off (B = 1 is the one-at-a-time run of (d));
  (c) the ratio b/a (goal >= 0.85);
and (d) the speedup of batched (16 at once) over one-episode-at-a-time rollout of the
same 16 episodes (goal >= 4x), cache on and off. Generated tokens are counted the same way
everywhere (completion tokens, end-of-turn included); prefill time counts against them.

    python bench/rollout.py            # B = 1, 8, 16, 32 (about 10 minutes on 2 cores)
    python bench/rollout.py --quick    # B = 1, 4, 8, short episodes (about 2 minutes)
    python bench/rollout.py --batches 1 8 16 32 64 --horizon 6
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace

import torch
from goals import goal, load_line

from agentgym.policy.base import Generation, Policy, SamplingParams
from agentgym.policy.hf import HFPolicy
from agentgym.registration import full_id, make
from agentgym.rollout import EpisodeSpec, RolloutOptions, RolloutStats, run_episodes

ENV_ID = "agentgym/GuessNumber-16-v0"


@dataclass
class Run:
    """One timed measurement."""

    tokens: int
    seconds: float
    prefilled: int = 0  # prompt tokens that went through the model
    reused: int = 0  # prompt tokens whose keys/values came from the prefix cache

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def make_specs(n: int, horizon: int, split: str, env_kwargs: dict) -> list[EpisodeSpec]:
    env = make(ENV_ID, **env_kwargs)
    tasks = env.unwrapped.tasks(split)
    env.close()
    return [EpisodeSpec(tasks[i % len(tasks)].id, horizon, sample=i // len(tasks), seed=i) for i in range(n)]


class _FirstPrompts(Policy):
    """Records the prompts of the first policy call of each episode and answers with an
    empty turn, so a one-turn rollout yields exactly what a real rollout starts from."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.prompts: list[list[int]] = []

    def generate(self, prompts, params, messages=None):
        self.prompts += [list(p) for p in prompts]
        eos = self.tokenizer.eos_token_id
        return [Generation([eos], [0.0], "", "stop") for _ in prompts]


def first_prompts(tokenizer, specs: list[EpisodeSpec], options: RolloutOptions, env_kwargs: dict):
    """The token ids each episode's first policy call sees (system prompt + first observation)."""
    recorder = _FirstPrompts(tokenizer)
    one_turn = [replace(spec, horizon=1) for spec in specs]
    sampling = SamplingParams(max_new_tokens=options.max_new_tokens)
    run_episodes(recorder, lambda: make(ENV_ID, **env_kwargs), full_id(ENV_ID), one_turn, sampling, options)
    return recorder.prompts


def raw_generate(policy: HFPolicy, prompts: list[list[int]], sampling: SamplingParams) -> Run:
    start = time.perf_counter()
    gens = policy.generate(prompts, sampling)
    return Run(sum(len(g.token_ids) for g in gens), time.perf_counter() - start, sum(map(len, prompts)))


def rollout(
    policy: HFPolicy,
    specs: list[EpisodeSpec],
    sampling: SamplingParams,
    options: RolloutOptions,
    env_kwargs: dict,
    concurrent: int,
) -> Run:
    policy.clear_cache()
    stats = RolloutStats()
    before = policy.cache.stats.prefilled_tokens, policy.cache.stats.reused_tokens
    run_episodes(
        policy,
        lambda: make(ENV_ID, **env_kwargs),
        full_id(ENV_ID),
        specs,
        sampling,
        options,
        max_concurrent=concurrent,
        stats=stats,
    )
    after = policy.cache.stats.prefilled_tokens, policy.cache.stats.reused_tokens
    policy.clear_cache()
    return Run(stats.generated_tokens, stats.seconds, after[0] - before[0], after[1] - before[1])


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small batches, short episodes")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batches", type=int, nargs="+", help="batch sizes (default 1 8 16 32; quick: 1 4 8)")
    parser.add_argument("--serial", type=int, help="episodes of the one-at-a-time comparison (default 16; quick 8)")
    parser.add_argument("--horizon", type=int, help="turn budget per episode (default 4; quick 3)")
    parser.add_argument("--max-new-tokens", type=int, help="token budget per turn (default 24; quick 16)")
    parser.add_argument("--temperature", type=float, default=0.7, help="0 for greedy")
    parser.add_argument("--env-kwargs", default='{"guess_tool": false}', help="JSON kwargs of the env")
    parser.add_argument("--no-cache-off", action="store_true", help="skip the runs with the prefix cache off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 helps on a busy machine)")
    args = parser.parse_args()
    batches = args.batches or ([1, 4, 8] if args.quick else [1, 8, 16, 32])
    serial = args.serial or (8 if args.quick else 16)
    horizon = args.horizon or (3 if args.quick else 4)
    max_new = args.max_new_tokens or (16 if args.quick else 24)
    env_kwargs = json.loads(args.env_kwargs)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cached = HFPolicy(args.model, batch_size=max(max(batches), serial), prefix_cache=True)
    plain = HFPolicy(cached.model, cached.tokenizer, batch_size=cached.batch_size, prefix_cache=False)
    modes = {"on": cached} if args.no_cache_off else {"on": cached, "off": plain}
    sampling = SamplingParams(max_new_tokens=max_new, temperature=args.temperature, stop=("</answer>",))
    options = RolloutOptions(max_new_tokens=max_new, max_context_tokens=8192)
    specs = make_specs(max(max(batches), serial), horizon, "test", env_kwargs)
    prompts = first_prompts(plain.tokenizer, specs, options, env_kwargs)
    print(
        f"model {args.model} ({next(cached.model.parameters()).dtype}, {torch.get_num_threads()} threads), "
        f"{ENV_ID} {env_kwargs}, horizon {horizon}, max_new_tokens {max_new}, temperature {args.temperature}, "
        f"first prompt ~{sum(map(len, prompts)) // len(prompts)} tokens",
        flush=True,
    )
    plain.generate(prompts[:2], SamplingParams(max_new_tokens=4, temperature=0))  # warm-up (allocator, kernels)

    # (d) first: its one-at-a-time runs are also the B = 1 rollout rows.
    serial_runs = {m: rollout(p, specs[:serial], sampling, options, env_kwargs, 1) for m, p in modes.items()}
    batched_runs = {m: rollout(p, specs[:serial], sampling, options, env_kwargs, serial) for m, p in modes.items()}
    for m in modes:
        print(
            f"  {serial} episodes, cache {m}: one at a time {serial_runs[m].seconds:.1f} s, "
            f"batched {batched_runs[m].seconds:.1f} s",
            flush=True,
        )

    headers = ["batch", "raw tok/s (a)"]
    for m in modes:
        headers += [f"rollout tok/s, cache {m} (b)", f"b/a cache {m} (c)", f"prefilled/reused cache {m}"]
    rows = []
    raw_at: dict[int, float] = {}
    for b in batches:
        raw = raw_generate(plain, prompts[:b], sampling)
        raw_at[b] = raw.tok_s
        cells = [str(b), f"{raw.tok_s:.1f}"]
        for m, policy in modes.items():
            if b == 1:
                run = serial_runs[m]
            elif b == serial:
                run = batched_runs[m]
            else:
                run = rollout(policy, specs[:b], sampling, options, env_kwargs, b)
            cells += [f"{run.tok_s:.1f}", f"{run.tok_s / raw.tok_s:.2f}", f"{run.prefilled}/{run.reused}"]
        rows.append(cells)
        print(f"  batch {b} done", flush=True)
    print()
    print(table(headers, rows))
    print()
    d_rows = [
        [
            m,
            f"{serial_runs[m].seconds:.1f}",
            f"{batched_runs[m].seconds:.1f}",
            f"{serial_runs[m].seconds / batched_runs[m].seconds:.2f}x",
        ]
        for m in modes
    ]
    print(table(["prefix cache", f"one at a time, s ({serial} ep)", f"batched x{serial}, s", "speedup (d)"], d_rows))
    if "off" in modes:
        print()
        on, off = batched_runs["on"], batched_runs["off"]
        print(
            f"prefix cache at {serial} concurrent episodes: {off.seconds / on.seconds:.2f}x faster rollout, "
            f"prefill {off.prefilled} -> {on.prefilled} tokens"
        )
    print()
    print("(a) includes the first prompt's full prefill, (b) every turn's.")
    raw_serial = raw_at.get(serial) or raw_generate(plain, prompts[:serial], sampling).tok_s
    for m, run in batched_runs.items():
        print(goal(f"rollout/raw at batch {serial}, cache {m}", run.tok_s / raw_serial, 0.85))
        print(goal(f"batched/one-at-a-time, {serial} episodes, cache {m}", serial_runs[m].seconds / run.seconds, 4.0))
    print(load_line())


if __name__ == "__main__":
    main()
