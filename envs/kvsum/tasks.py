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
    split: str, count: int, seed: int, num_steps: int, keys_per_turn: int, turns_per_step: int
) -> list[Task]:
    work = num_steps * keys_per_turn
    difficulty = "easy" if work <= 10 else ("medium" if work <= 50 else "hard")
    instruction = (
        f"Keep a running sum over {num_steps} steps. Each step shows {keys_per_turn} key(s); add their "
        "values from the dictionary to the running sum and reply with the new total as <answer>N</answer>."
    )
    code = SPLIT_CODES[split]
    return [
        Task(
            id=f"kvsum-{split}-{i:04d}",
            instruction=instruction,
            split=split,
            min_turns=num_steps * turns_per_step,
            difficulty=difficulty,
            metadata={"seed": (seed, code, i)},
        )
        for i in range(count)
    ]
