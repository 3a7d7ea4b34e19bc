"""KVSum tasks: a dictionary of nonsense five-letter words and a key sequence per task.

A task's content (dictionary, values, keys) is generated from its own seed when the
episode starts, so listing thousands of tasks stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from agentgym.env import Task

CONSONANTS = "bcdfghjklmnprstvwxz"
VOWELS = "aeiou"
SPLIT_CODES = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Episode:
    """The content of one task: the dictionary and the keys shown at each step."""

    dictionary: dict[str, int]
    keys: tuple[tuple[str, ...], ...]  # keys[step] = the K keys shown at that step

    def steps_needing_lookup(self) -> int:
        """Steps that show at least one key not seen before (an agent that remembers
        looked-up values needs a lookup turn only for those)."""
        seen: set[str] = set()
        count = 0
        for step_keys in self.keys:
            count += not seen.issuperset(step_keys)
            seen.update(step_keys)
        return count

    def running_sums(self) -> list[int]:
        total, sums = 0, []
        for step_keys in self.keys:
            total += sum(self.dictionary[k] for k in step_keys)
            sums.append(total)
        return sums


def nonsense_words(rng: np.random.Generator, count: int) -> list[str]:
    """`count` distinct pronounceable five-letter words (consonant-vowel-c-v-c)."""
    words: dict[str, None] = {}
    while len(words) < count:
        c = rng.integers(0, len(CONSONANTS), size=(count, 3))
        v = rng.integers(0, len(VOWELS), size=(count, 2))
        for (c1, c2, c3), (v1, v2) in zip(c.tolist(), v.tolist(), strict=True):
            words.setdefault(CONSONANTS[c1] + VOWELS[v1] + CONSONANTS[c2] + VOWELS[v2] + CONSONANTS[c3])
            if len(words) == count:
                break
    return list(words)


@lru_cache(maxsize=256)
def build_episode(
    seed: tuple[int, ...], num_steps: int, keys_per_turn: int, dict_size: int, value_range: int
) -> Episode:
    rng = np.random.default_rng(list(seed))
    words = nonsense_words(rng, dict_size)
    values = rng.integers(-value_range, value_range + 1, size=dict_size).tolist()
    picks = rng.integers(0, dict_size, size=(num_steps, keys_per_turn)).tolist()
    return Episode(dict(zip(words, values, strict=True)), tuple(tuple(words[i] for i in row) for row in picks))


def make_tasks(
    split: str,
    count: int,
    seed: int,
    num_steps: int,
    keys_per_turn: int,
    dict_size: int,
    value_range: int,
    lookup: bool,
) -> list[Task]:
    """Tasks of a split. With `lookup` (dictionary behind a tool) the minimum turns are one
    answer per step plus one lookup turn for each step that shows an unseen key, which
    needs the episode's content; otherwise one turn per step."""
    work = num_steps * keys_per_turn
    difficulty = "easy" if work <= 10 else ("medium" if work <= 50 else "hard")
    instruction = (
        f"Keep a running sum over {num_steps} steps. Each step shows {keys_per_turn} key(s); add their "
        "values from the dictionary to the running sum and reply with the new total as <answer>N</answer>."
    )
    code = SPLIT_CODES[split]
    tasks = []
    for i in range(count):
        task_seed = (seed, code, i)
        min_turns = num_steps
        if lookup:
            min_turns += build_episode(
                task_seed, num_steps, keys_per_turn, dict_size, value_range
            ).steps_needing_lookup()
        tasks.append(
            Task(
                id=f"kvsum-{split}-{i:04d}",
                instruction=instruction,
                split=split,
                min_turns=min_turns,
                difficulty=difficulty,
                metadata={"seed": task_seed},
            )
        )
    return tasks
