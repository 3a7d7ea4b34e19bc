"""Trajectories: what an episode was, token for token, and how it ended.

An episode is one or more `Segment`s (a new segment starts after each summarisation);
each segment is the prompt the policy started from and everything after it, with a loss
mask that is 1 exactly on the tokens the policy generated. Saved as JSONL or Parquet and
read back unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

__all__ = ["END_REASONS", "Segment", "Trajectory", "load_trajectories", "save_trajectories"]

EndReason = Literal["success", "failure", "over_turn", "overlong", "aborted"]
END_REASONS: tuple[str, ...] = ("success", "failure", "over_turn", "overlong", "aborted")


@dataclass
class Segment:
    """One contiguous context: `prompt_ids`, then `completion_ids` (generated and env tokens
    interleaved), `loss_mask` (1 on generated tokens) and `logprobs` (0.0 on env tokens)."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    kind: str = "turns"  # "turns", or "summary" for a segment that ends with a summary

    def extend(self, ids: list[int], generated: bool, logprobs: list[float] | None = None) -> None:
        self.completion_ids.extend(ids)
        self.loss_mask.extend([1 if generated else 0] * len(ids))
        self.logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


@dataclass
class Trajectory:
    """One episode.

    Attributes:
        env_id, task_id, sample: which env and task, and which of the k samples.
        horizon: the episode's turn budget.
        segments: the token-level record (see `Segment`).
        reward: the return (sum of `turn_rewards`).
        end_reason: success | failure | over_turn | overlong | aborted (env or infra failure:
            never to be trained on as a zero reward).
        messages: the conversation as text, for reading.
        info: the env's last `info` (JSON-safe entries only), e.g. KVSum's accuracies.
    """

    env_id: str
    task_id: str
    sample: int = 0
    horizon: int = 0
    segments: list[Segment] = field(default_factory=list)
    reward: float = 0.0
    turn_rewards: list[float] = field(default_factory=list)
    turn_tokens: list[int] = field(default_factory=list)  # tokens generated at each turn
    turn_tool_calls: list[int] = field(default_factory=list)  # tool calls made by the end of each turn
    turn_invalid: list[int] = field(default_factory=list)  # 1 where the turn's action was invalid
    turns: int = 0
    success: bool = False
    end_reason: str = "failure"
    tool_calls: int = 0
    invalid_actions: int = 0
    generated_tokens: int = 0
    summaries: int = 0
    error: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return sum(len(s) for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        data = dict(data)
        data["segments"] = [Segment(**s) for s in data.get("segments", [])]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def json_safe(info: dict[str, Any]) -> dict[str, Any]:
    """The entries of an env `info` that survive JSON (tool schemas are dropped: they are the env's)."""
    out = {}
    for k, v in info.items():
        if k == "tools":
            continue
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[k] = v
    return out


def save_trajectories(trajectories: list[Trajectory], path: str | Path) -> Path:
    """Write to `.jsonl` or `.parquet` (by suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [t.to_dict() for t in trajectories]
    if path.suffix == ".jsonl":
        with open(path, "w") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Nested free-form dicts become JSON strings: Parquet needs one schema for all rows.
        for row in rows:
            row["info"] = json.dumps(row["info"], ensure_ascii=False)
            row["messages"] = json.dumps(row["messages"], ensure_ascii=False)
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        raise ValueError(f"unknown trajectory file type {path.suffix!r}: use .jsonl or .parquet")
    return path


def load_trajectories(path: str | Path) -> list[Trajectory]:
    """Read trajectories written by `save_trajectories`."""
    path = Path(path)
    if path.suffix == ".jsonl":
        with open(path) as fh:
            return [Trajectory.from_dict(json.loads(line)) for line in fh if line.strip()]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        for row in rows:
            row["info"] = json.loads(row["info"])
            row["messages"] = json.loads(row["messages"])
        return [Trajectory.from_dict(r) for r in rows]
    raise ValueError(f"unknown trajectory file type {path.suffix!r}: use .jsonl or .parquet")
