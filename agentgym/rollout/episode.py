"""One episode in flight: its token record and its conversation, driven by env results.

The `Episode` is the token side of an episode and lives in the driver, next to the
policy. It never touches the env: the pool runs `reset`/`step` wherever the env lives
(in this process or in a Ray actor) and feeds the results in (`on_reset`, `on_step`).
So both backends build trajectories with this one piece of code.

States: "reset" (waits for the env's reset), "policy" (waits for a completion), "env"
(waits for the env's step), "done".
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from agentgym.policy.base import Generation, SamplingParams
from agentgym.rollout.budget import Budget, budget_visible
from agentgym.rollout.context import ContextStrategy, make_context
from agentgym.rollout.prompting import ChatFormat, system_prompt
from agentgym.trajectory import Segment, Span, Trajectory, json_safe, turn_info_delta

__all__ = ["Episode", "EpisodeSpec", "RolloutOptions", "episode_seed", "rollout_settings"]


@dataclass(frozen=True)
class EpisodeSpec:
    """Which episode to run: a task, a turn budget (horizon), and which of k samples."""

    task_id: str
    horizon: int
    sample: int = 0
    seed: int | None = None


@dataclass(frozen=True)
class RolloutOptions:
    """Per-episode settings of a rollout (see `agentgym.config.RolloutConfig` for help)."""

    max_new_tokens: int = 256
    max_context_tokens: int = 4096
    announce_budget: bool = False
    check_again: bool = False
    budget_tracker: bool = False
    tools_in_template: bool | None = None
    context: str = "full"
    context_config: Any = None  # the strategy's `Config` (None: its defaults)
    max_total_tokens: int | None = None

    @property
    def budget_visible(self) -> bool:
        """Whether the agent can see its turn budget (`agentgym.rollout.budget.budget_visible`)."""
        return budget_visible(self)

    @classmethod
    def from_config(cls, rollout: Any, max_new_tokens: int) -> RolloutOptions:
        """The options a `RolloutConfig` section describes (shared by eval and training)."""
        own = {f.name for f in fields(cls)} - {"max_new_tokens", "context_config"}
        return cls(
            max_new_tokens=max_new_tokens,
            context_config=rollout.context_config(),
            **{name: getattr(rollout, name) for name in own},
        )


def rollout_settings(cfg: Any) -> tuple[SamplingParams, RolloutOptions]:
    """What a config with `sampling` and `rollout` sections (an evaluation's, a training
    run's) asks of every episode: the per-turn sampling and the rollout options."""
    return SamplingParams.from_config(cfg.sampling), RolloutOptions.from_config(
        cfg.rollout, cfg.sampling.max_new_tokens
    )


def episode_seed(seed: int, task: int, sample: int, step: int = 0) -> int:
    """The env's reset seed for sample `sample` of the `task`-th task of a batch drawn at
    training step `step` (an evaluation is step 0) of a run seeded `seed`: the same
    episode gets the same seed in a resumed run, and the samples of a task differ."""
    return seed * 1_000_003 + step * 10_007 + task * 101 + sample


class Episode:
    """Builds one episode's `Trajectory` token by token from env results and completions.

    The policy's context is `context_ids` (token ids) and `context_messages` (the same
    conversation as messages); `traj.messages` is the whole conversation for reading
    (every message, including the summary requests and the observations a strategy
    replaced). The context strategy (`agentgym.rollout.context`, one instance per episode)
    changes the context through `append_observation`, `restart`, `ask` and `finish`; the
    episode knows no concrete strategy.

    Example (what the pool does):
        >>> ep = Episode("agentgym/GuessNumber-v0", EpisodeSpec("test-0", 8), tokenizer, RolloutOptions())
        >>> ep.on_reset(*env_host.reset(...))            # state "policy"
        >>> action = ep.act(policy.generate([ep.context_ids], ...)[0])   # state "env"
        >>> ep.on_step(*env.step(action))                 # "policy" again, or "done"
    """

    def __init__(
        self,
        env_id: str,
        spec: EpisodeSpec,
        tokenizer: Any,
        options: RolloutOptions,
        strategy: ContextStrategy | None = None,
    ):
        self.spec, self.options = spec, options
        self.fmt = ChatFormat(tokenizer, options.tools_in_template)
        self.traj = Trajectory(env_id=env_id, task_id=spec.task_id, sample=spec.sample, horizon=spec.horizon)
        self.budget = Budget(
            max_turns=spec.horizon,
            max_new_tokens=options.max_new_tokens,
            max_total_tokens=options.max_total_tokens,
            budget_tracker=options.budget_tracker,
            check_again=options.check_again,
        )
        self.strategy = strategy or make_context(options.context, options.context_config)
        self.state = "reset"
        self.segment: Segment | None = None
        self.context_messages: list[dict[str, str]] = []
        self.task_prompt = ""
        self.tools: list[dict[str, Any]] = []
        self.compressions: list[tuple[int, int]] = []  # (tokens before, after) of each context compression
        self._asked: tuple[str, bool] | None = None  # (kind, trained) of a pending `ask`
        self._action: Span | None = None  # the latest action sent to the env
        self._last_info: dict[str, Any] | None = None  # the latest step's info (turn_info records what changed)

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def context_ids(self) -> list[int]:
        return self.segment.input_ids

    @property
    def messages(self) -> list[dict[str, str]]:
        """The conversation the policy sees now (passed to chat-API policies)."""
        return self.context_messages

    def reset_options(self) -> dict[str, Any]:
        return self.budget.reset_options(self.spec.task_id)

    # ------------------------------------------------------------------ env results

    def on_reset(self, observation: str, action_format: str, tools: list[dict[str, Any]]) -> None:
        """Open the episode with the env's first observation (the task)."""
        self.tools, self.task_prompt = list(tools), observation
        system = system_prompt(
            action_format,
            self.tools,
            render_tools=not self.fmt.tools_in_template,
            max_turns=self.spec.horizon if self.options.announce_budget else None,
        )
        messages = [{"role": "system", "content": system}, {"role": "user", "content": observation}]
        self.traj.messages = list(messages)
        self.restart(messages, {})

    def act(self, gen: Generation) -> str | None:
        """Record a completion; return the action to send to the env, or None when there
        is none (the completion answered an `ask`, or it ended the episode)."""
        seg, traj = self.segment, self.traj
        kind, trained = self._asked or ("action", True)
        self._asked = None
        span = seg.reply(gen.token_ids, gen.logprobs, kind=kind, trained=trained, message=len(traj.messages))
        seg.extend(self.fmt.closing(gen.token_ids), False)
        traj.generated_tokens += len(gen.token_ids)
        traj.retokenized = traj.retokenized or bool(gen.meta.get("retokenized"))
        message = {"role": "assistant", "content": gen.text}
        traj.messages.append(message)
        self.context_messages.append(message)
        if self.budget.tokens_exceeded(traj.generated_tokens):
            self.finish("overlong", {})
            return None
        action = self.strategy.on_reply(self, gen.text, span)
        if action is None or self.done:
            return None
        self._action = span  # the env's answer gives it its turn (`on_step`)
        self.state = "env"
        return action

    def on_step(self, observation: str, reward: float, terminated: bool, truncated: bool, info: dict) -> None:
        """Record the env's step; the context strategy places the observation."""
        traj = self.traj
        self._action.turn = traj.turns
        traj.turns += 1
        traj.turn_rewards.append(float(reward))
        traj.reward += float(reward)
        traj.turn_invalid.append(int(bool(info.get("invalid_action"))))
        traj.invalid_actions += traj.turn_invalid[-1]
        traj.tool_calls = int(info.get("tool_calls", traj.tool_calls))
        traj.turn_tokens.append(self._action.end - self._action.start)
        traj.turn_tool_calls.append(traj.tool_calls)
        traj.turn_info.append(turn_info_delta(info, self._last_info))
        self._last_info = info
        traj.messages.append({"role": "user", "content": observation})
        if terminated or truncated:
            traj.success = bool(info.get("success")) and terminated
            self.finish(("success" if traj.success else "failure") if terminated else "over_turn", info)
            return
        self.state = "policy"
        self.strategy.on_observation(self, observation, info)

    # ------------------------------------------------------------------ context changes

    def append_observation(self, observation: str, info: dict[str, Any], delta: list[int] | None = None) -> None:
        """Append an observation (its chat-template delta, when already computed) to the
        current segment."""
        if delta is None:
            delta = self.fmt.user_turn(observation)
        if self._overflows(len(self.segment) + len(delta), info):
            return
        self.segment.extend(delta, False)
        self.context_messages.append({"role": "user", "content": observation})

    def restart(self, messages: list[dict[str, str]], info: dict[str, Any], kind: str = "turns") -> None:
        """Start a new segment whose prompt is `messages` rendered by the chat template."""
        self.segment = Segment(prompt_ids=self.fmt.start(messages, self.tools), kind=kind)
        self.traj.segments.append(self.segment)
        self.context_messages = list(messages)
        self.state = "policy"
        if not self._overflows(len(self.segment), info):
            self.strategy.on_restart(self, self.segment)

    def ask(self, request: str, *, kind: str, trained: bool, info: dict[str, Any]) -> None:
        """Ask the policy something the env never sees (a user message, e.g. SUPO's summary
        request). The reply is recorded in this segment as a span of `kind` (in the loss
        when `trained`), the segment takes that kind, and the reply goes to the strategy's
        `on_reply`, not to the env."""
        delta = self.fmt.user_turn(request)
        if self._overflows(len(self.segment) + len(delta), info):
            return
        self.segment.extend(delta, False)
        self.segment.kind = kind
        message = {"role": "user", "content": request}
        self.context_messages.append(message)
        self.traj.messages.append(message)
        self._asked = (kind, trained)

    def _overflows(self, tokens: int, info: dict[str, Any]) -> bool:
        """End the episode `overlong` (and return True) when `tokens` plus the next
        completion would not fit the window: the record never holds more than the policy
        could have seen."""
        if tokens + self.options.max_new_tokens > self.options.max_context_tokens:
            self.finish("overlong", info)
            return True
        return False

    # ------------------------------------------------------------------ endings

    def finish(self, reason: str, info: dict[str, Any]) -> None:
        self.traj.end_reason = reason
        self.traj.info = json_safe(info)
        self.state = "done"

    def abort(self, cause: str) -> None:
        """End as `aborted` (an env or infrastructure failure, never a zero reward)."""
        self.traj.error = cause[-4000:]
        self.traj.end_reason = "aborted"
        self.traj.success = False
        self.state = "done"
