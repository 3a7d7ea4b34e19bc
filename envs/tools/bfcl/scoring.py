"""Scoring an episode as BFCL's multi-turn checker scores it, one user turn at a time.

BFCL (`multi_turn_checker`) replays the model's calls and the ground-truth calls on
fresh backends after inference, and for every turn whose ground truth is not empty
requires: (1) the model made at least one call in that turn, (2) every backend's public
attributes equal the ground truth's (`state_checker`), (3) every result of the turn's
ground-truth calls appears among the results of all the model's calls so far, as a
multiset (`response_checker`). The first failing turn fails the entry.

Here the model's calls already ran live on the episode's own backends, so at the end
of each user turn only the ground truth runs (on its own fresh backends) and BFCL's
two sub-checkers are applied to the same objects the offline checker would see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentgym.envs.tools.bfcl.backends import Backends

__all__ = ["TurnScorer"]


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class TurnScorer:
    """Checks each user turn of one episode; remembers the first failure.

    Args:
        gold: the ground truth's backends (fresh at the start of the episode).
    """

    gold: Backends
    failure: dict[str, Any] | None = None
    all_model_results: list[str] = field(default_factory=list)

    def end_turn(
        self, turn_index: int, gold_calls: tuple[str, ...], model: Backends, model_steps: list[list[str]]
    ) -> None:
        """Score one finished user turn.

        Args:
            turn_index: the turn's index in the entry.
            gold_calls: the turn's ground-truth call strings.
            model: the episode's backends, after the agent's calls of this turn.
            model_steps: the results of the agent's calls of this turn, one list per message.
        """
        from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import response_checker, state_checker

        gold_results = [self.gold.call_string(call) for call in gold_calls]
        self.all_model_results.extend(r for step in model_steps for r in step)
        if self.failure is not None or not gold_calls:
            return  # BFCL stops at the first failure; an empty ground-truth turn is not checked
        if not any(model_steps):
            self.failure = {
                "error_type": "multi_turn:empty_turn_model_response",
                "error_message": f"Model response list is empty for turn {turn_index}",
                "turn": turn_index,
            }
            return
        result = state_checker(model.instances, self.gold.instances)
        if result["valid"]:
            result = response_checker(self.all_model_results, gold_results, turn_index)
        if not result["valid"]:
            details = result.get("details", {})
            self.failure = {
                "error_type": result["error_type"],
                "error_message": result["error_message"],
                "turn": turn_index,
                # the differing attributes, or the missing responses; full states are too long for info
                "details": _short(details.get("differences", details.get("missing_items", ""))),
            }
