"""Trajectories: what an episode was, token for token, and how it ended.

An episode is one or more `Segment`s (a new segment starts after each summarisation);
each segment is the prompt the policy started from and everything after it, with a loss
mask that is 1 exactly on the trained generated tokens. Each generated reply is a `Span`
of its segment: an action (with the env turn it produced) or a summary, so per-turn credit
(PPO's turn rewards, GiGPO's step groups) never guesses turns from the loss mask. Saved as
JSONL or Parquet with a schema version, and read back unchanged.

Schema versions: 1 (no spans; `load_trajectories` derives them from the loss mask, see
`legacy_spans`), 2 (spans recorded by the rollout), 3 (`turn_info`: what each turn's env
`info` said that is not recorded elsewhere, see `turn_info_delta`; empty in older files),
4 (`policy_version`: which weights of a training run sampled it; None in older files and
outside training).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

__all__ = [
    "END_REASONS",
    "SCHEMA_VERSION",
    "Segment",
    "Span",
    "Trajectory",
    "TrajectoryFileError",
    "legacy_spans",
    "load_trajectories",
    "outcome_at",
    "save_trajectories",
    "turn_info_delta",
]

EndReason = Literal["success", "failure", "over_turn", "overlong", "aborted"]
END_REASONS: tuple[str, ...] = ("success", "failure", "over_turn", "overlong", "aborted")
#: The version `save_trajectories` writes; older files are read back too.
SCHEMA_VERSION = 4


@dataclass
class Span:
    """One generated reply inside a segment: `completion_ids[start:end]`.

    Attributes:
        start, end: positions in the segment's `completion_ids` (end exclusive).
        kind: "action" (sent to the env) or "summary" (a SUPO summary, never sent).
        turn: the env turn this action produced (an index into `Trajectory.turn_rewards`);
            None for a summary, or for an action the env never answered (the episode
            ended first: token budget, abort).
        message: the reply's index in `Trajectory.messages` (None when unknown).
    """

    start: int
    end: int
    kind: str = "action"
    turn: int | None = None
    message: int | None = None


@dataclass
class Segment:
    """One contiguous context: `prompt_ids`, then `completion_ids` (generated and env tokens
    interleaved), `loss_mask` (1 on generated tokens) and `logprobs` (0.0 on env tokens)."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    kind: str = "turns"  # "turns", or "summary" for a segment that ends with a summary
    spans: list[Span] = field(default_factory=list)  # the generated replies, in order

    def extend(self, ids: list[int], generated: bool, logprobs: list[float] | None = None) -> None:
        """Append tokens; `generated` ones get loss mask 1 and are recorded as an action span
        (see `reply` for the rollout's replies, which say what they are)."""
        if generated:
            self.reply(ids, logprobs)
            return
        self._append(ids, 0, logprobs)

    def reply(
        self,
        ids: list[int],
        logprobs: list[float] | None = None,
        *,
        kind: str = "action",
        trained: bool = True,
        message: int | None = None,
    ) -> Span:
        """Append a generated reply and record its span (loss mask 1 when `trained`)."""
        span = Span(len(self.completion_ids), len(self.completion_ids) + len(ids), kind, None, message)
        self._append(ids, 1 if trained else 0, logprobs)
        self.spans.append(span)
        return span

    def _append(self, ids: list[int], mask: int, logprobs: list[float] | None) -> None:
        self.completion_ids.extend(ids)
        self.loss_mask.extend([mask] * len(ids))
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
        turn_info: per answered turn, the entries of that step's `info` that changed since
            the step before and are not recorded in other fields (see `turn_info_delta`).
        retokenized: some reply's tokens are the local tokenizer's reading of text a server
            returned (a chat API, a text-only server), not the sampled tokens: fine for
            evaluation, not exact for training.
        policy_version: in training, the policy version that sampled it: the number of
            training steps whose updates its weights had seen (step k's rollouts: k, or
            k - 1 with `async_steps: 1`); None elsewhere.
        schema_version: the record's format (`SCHEMA_VERSION` for new trajectories).
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
    turn_info: list[dict[str, Any]] = field(default_factory=list)
    retokenized: bool = False
    policy_version: int | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def total_tokens(self) -> int:
        return sum(len(s) for s in self.segments)

    def turn_spans(self) -> dict[int, tuple[int, Span]]:
        """For each answered env turn, (segment index, span) of the action that produced it."""
        return {
            span.turn: (i, span)
            for i, seg in enumerate(self.segments)
            for span in seg.spans
            if span.kind == "action" and span.turn is not None
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        data = dict(data)
        segments = []
        for s in data.get("segments", []):
            s = _known(Segment, s)
            s["spans"] = [Span(**_known(Span, span)) for span in s.get("spans") or []]
            segments.append(Segment(**s))
        data["segments"] = segments
        version = int(data.get("schema_version") or 1)
        traj = cls(**_known(cls, data))
        if version < 2:
            legacy_spans(traj)
            traj.schema_version = SCHEMA_VERSION
        return traj


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of `cls` (a newer file may have more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def legacy_spans(traj: Trajectory) -> None:
    """Spans for a schema-1 trajectory, which did not record them, derived from its loss
    mask as well as it can be: each run of 1s is one reply, in order; in a segment of kind
    "summary" the last run is the summary when there are more runs than turns (summaries
    trained), and the actions take the turns in order. The k-th reply is the k-th assistant
    message. Summaries recorded with loss mask 0 (`train_on_summaries=false`) leave no run,
    so they cannot be found, and need none."""
    runs: list[tuple[int, int, int]] = []  # (segment, start, end)
    for i, seg in enumerate(traj.segments):
        start = None
        for t, m in enumerate([*seg.loss_mask, 0]):
            if m and start is None:
                start = t
            elif not m and start is not None:
                runs.append((i, start, t))
                start = None
    summaries = set()
    if len(runs) > len(traj.turn_rewards):
        for i, seg in enumerate(traj.segments):
            mine = [r for r in runs if r[0] == i]
            if seg.kind == "summary" and mine:
                summaries.add(mine[-1])
    replies = [k for k, m in enumerate(traj.messages) if m.get("role") == "assistant"]
    turn = 0
    for seg in traj.segments:
        seg.spans = []
    for k, run in enumerate(runs):
        i, start, end = run
        message = replies[k] if len(replies) == len(runs) else None
        if run in summaries:
            span = Span(start, end, "summary", None, message)
        else:
            span = Span(start, end, "action", turn if turn < len(traj.turn_rewards) else None, message)
            turn += 1
        traj.segments[i].spans.append(span)


def outcome_at(traj: Trajectory, h: int) -> tuple[str, int]:
    """(end reason, turns used) the episode would have had with a budget of h turns.

    Exact when the agent could not see its budget: then the first h turns of an episode
    with budget H > h are exactly an episode with budget h.
    """
    reason, turns = traj.end_reason, traj.turns
    if reason in ("success", "failure"):
        return (reason, turns) if turns <= h else ("over_turn", h)
    if reason in ("aborted", "overlong"):  # the failing turn was turn `turns + 1`
        return (reason, turns) if turns < h else ("over_turn", h)
    return ("over_turn", min(turns, h))


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


#: `info` entries a turn's record leaves out: recorded in other fields (turn_*, tool_calls,
#: success), the same for every turn (the task, the budget), or the env's (tool schemas).
TURN_INFO_SKIP = frozenset(
    {"task_id", "instruction", "turn", "max_turns", "turns_left", "tool_calls", "invalid_action", "success", "tools"}
)
#: A value longer than this as JSON is replaced by a note of its size.
TURN_INFO_MAX_CHARS = 1000


def turn_info_delta(info: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """The compact record of one turn's `info`: its JSON-safe entries but those in
    `TURN_INFO_SKIP`, and only those whose value differs from the turn before's (`before`;
    None for the first turn); a value longer than `TURN_INFO_MAX_CHARS` as JSON is kept as
    a note of its size. An env whose info holds nothing more records `{}` per turn; an
    entry that disappears from info is not recorded.

    Example:
        >>> turn_info_delta({"turn": 2, "url": "/cart", "items": 3}, {"turn": 1, "url": "/cart", "items": 2})
        {'items': 3}
    """
    out = {}
    for k, v in json_safe(info).items():
        if k in TURN_INFO_SKIP or (before is not None and k in before and before[k] == v):
            continue
        text = json.dumps(v)
        out[k] = v if len(text) <= TURN_INFO_MAX_CHARS else f"<{len(text)} characters of JSON, not kept>"
    return out


# Files (JSONL, Parquet) live in their own module; importable from here as before.
from agentgym.trajectory_files import TrajectoryFileError, load_trajectories, save_trajectories  # noqa: E402
