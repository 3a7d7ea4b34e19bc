"""One episode in flight: its env, its token record, its conversation."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from agentgym.policy.base import Generation
from agentgym.prompting import ChatFormat, system_prompt
from agentgym.trajectory import Segment, Trajectory, json_safe

__all__ = ["Episode", "EpisodeSpec", "RolloutOptions"]


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


class Episode:
    """Drives one env through one episode, building its `Trajectory` token by token.

    The policy's context is `self.context_ids`; after each completion, `advance` appends
    the generated tokens (loss mask 1), the template's closing tokens and the next
    observation's tokens (mask 0), and steps the env.
    """

    def __init__(self, env: gym.Env, env_id: str, spec: EpisodeSpec, tokenizer: Any, options: RolloutOptions):
        self.env, self.spec, self.options = env, spec, options
        self.fmt = ChatFormat(tokenizer, options.tools_in_template)
        self.traj = Trajectory(env_id=env_id, task_id=spec.task_id, sample=spec.sample, horizon=spec.horizon)
        self.done = False
        self.segment: Segment | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        reset_options = {
            "task_id": self.spec.task_id,
            "max_turns": self.spec.horizon,
            "check_again": self.options.check_again,
            "budget_tracker": self.options.budget_tracker,
        }
        try:
            observation, _ = self.env.reset(seed=self.spec.seed, options=reset_options)
        except Exception as exc:
            self._abort(exc)
            return
        base = self.env.unwrapped
        tools = base.tool_schemas
        system = system_prompt(
            base.action_format,
            tools,
            render_tools=not self.fmt.tools_in_template,
            max_turns=self.spec.horizon if self.options.announce_budget else None,
        )
        self.traj.messages = [{"role": "system", "content": system}, {"role": "user", "content": observation}]
        self.segment = Segment(prompt_ids=self.fmt.start(self.traj.messages, tools))
        self.traj.segments.append(self.segment)
        self._check_context(0)

    @property
    def context_ids(self) -> list[int]:
        return self.segment.input_ids

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.traj.messages

    def advance(self, gen: Generation) -> None:
        """Record a completion, step the env with its text, and append the observation."""
        seg, traj = self.segment, self.traj
        seg.extend(gen.token_ids, True, gen.logprobs)
        seg.extend(self.fmt.closing(gen.token_ids), False)
        traj.generated_tokens += len(gen.token_ids)
        traj.messages.append({"role": "assistant", "content": gen.text})
        try:
            observation, reward, terminated, truncated, info = self.env.step(gen.text)
        except Exception as exc:
            self._abort(exc)
            return
        traj.turns += 1
        traj.turn_rewards.append(float(reward))
        traj.reward += float(reward)
        traj.turn_invalid.append(int(bool(info.get("invalid_action"))))
        traj.invalid_actions += traj.turn_invalid[-1]
        traj.tool_calls = int(info.get("tool_calls", traj.tool_calls))
        traj.turn_tokens.append(len(gen.token_ids))
        traj.turn_tool_calls.append(traj.tool_calls)
        traj.messages.append({"role": "user", "content": observation})
        if terminated or truncated:
            traj.success = bool(info.get("success")) and terminated
            reason = ("success" if traj.success else "failure") if terminated else "over_turn"
            self._finish(reason, info)
            return
        delta = self.fmt.user_turn(observation)
        if not self._check_context(len(delta), info):
            seg.extend(delta, False)

    def _check_context(self, extra: int, info: dict[str, Any] | None = None) -> bool:
        """End the episode `overlong` (and return True) when `extra` more tokens and the
        next completion would not fit the window; the record never holds more than the
        policy could have seen."""
        if len(self.segment) + extra + self.options.max_new_tokens > self.options.max_context_tokens:
            self._finish("overlong", info or {})
            return True
        return False

    # ------------------------------------------------------------------ endings

    def _finish(self, reason: str, info: dict[str, Any]) -> None:
        self.traj.end_reason = reason
        self.traj.info = json_safe(info)
        self.done = True

    def _abort(self, exc: BaseException) -> None:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
        self.traj.error = f"{type(exc).__name__}: {exc}\n{''.join(tb)[-2000:]}"
        self.traj.end_reason = "aborted"
        self.traj.success = False
        self.done = True
