"""Context strategies and algorithms from installed packages: found by name through their
entry points, configured by a section of their own, and trained with like built-ins."""

from __future__ import annotations

import re
import sys
import textwrap

import pytest
from agentgym.trainers.config import TrainConfig

from agentgym.config import ConfigError, config_help
from agentgym.rollout.context import CONTEXTS
from tests.test_train_support import one_torch_thread, tiny_config  # noqa: F401

DROP_OLD_RESULTS = '''
"""A context strategy in a package of its own: observations older than N turns are dropped."""
from dataclasses import dataclass

from agentgym.config import help_field
from agentgym.rollout.context import ContextStrategy


@dataclass
class DropOldResultsConfig:
    turns: int = help_field(1, "observations older than this many turns are dropped")
    marker: str = help_field("[dropped]", "what stands for a dropped observation")


class DropOldResults(ContextStrategy):
    Config = DropOldResultsConfig

    def on_observation(self, ep, observation, info):
        messages = [*ep.context_messages, {"role": "user", "content": observation}]
        shown = [i for i, m in enumerate(messages) if i >= 2 and m["role"] == "user"]
        old = [i for i in shown[: -self.config.turns] if messages[i]["content"] != self.config.marker]
        if not old:
            ep.append_observation(observation, info)
            return
        for i in old:
            messages[i] = {"role": "user", "content": self.config.marker}
        ep.restart(messages, info)
'''


def install(tmp_path, monkeypatch, registry, module: str, source: str, entry: str) -> None:
    """Make `module` an installed distribution whose entry point (in `registry`'s group)
    is `entry`: a dist-info folder on sys.path, as pip would leave it."""
    site = tmp_path / "site"
    dist = site / f"{module}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{registry.group}]\n{entry}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))  # the plug-in leaves with the test
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_a_context_strategy_from_an_installed_package_is_configured_and_trains_a_step(tmp_path, monkeypatch):
    install(
        tmp_path,
        monkeypatch,
        CONTEXTS,
        "drop_old_results",
        DROP_OLD_RESULTS,
        "drop_old_results = drop_old_results:DropOldResults",
    )
    assert "drop_old_results" in CONTEXTS.names()
    help_lines = config_help(TrainConfig)
    assert any(ln.strip().startswith("rollout.drop_old_results.turns (int, default 1)") for ln in help_lines)
    with pytest.raises(ConfigError, match=re.escape("did you mean 'rollout.drop_old_results.turns'")):
        tiny_config(tmp_path / "bad", "rollout.context=drop_old_results", "rollout.drop_old_results.turn=2")

    from agentgym.trainers import build_trainer

    cfg = tiny_config(
        tmp_path / "run",
        "steps=1",
        "curriculum.start=4",
        "rollout.context=drop_old_results",
        "rollout.drop_old_results.turns=2",
        "rollout.drop_old_results.marker=(gone)",
    )
    assert cfg.rollout.context_config().turns == 2
    with build_trainer(cfg) as trainer:
        trajs, _ = trainer.collect(0, 4)
        long = [t for t in trajs if t.turns == 4]
        assert long, "some rollouts should use all four turns"
        for traj in long:
            # Turns 1-3 share the first context; the 4th starts a new one without the oldest observation.
            assert len(traj.segments) == 2
            prompt = trainer.tokenizer.decode(traj.segments[1].prompt_ids)
            assert prompt.count("(gone)") == 1
        result = trainer.train()
    assert result["step"] == 1 and result["last"]["reward_mean"] == result["last"]["reward_mean"]


SHORT_GRPO = '''
"""An algorithm in a package of its own: GRPO on rewards that charge each turn."""
import dataclasses
from dataclasses import dataclass

from agentgym.config import ConfigError, help_field
from agentgym.trainers.grpo import GRPOConfig, GRPOTrainer


@dataclass
class ShortGRPOConfig(GRPOConfig):
    turn_penalty: float = help_field(0.1, "subtracted from a rollout's reward per turn it took")

    def __post_init__(self):
        if self.turn_penalty < 0:
            raise ConfigError("short_grpo.turn_penalty must be >= 0")


class ShortGRPO(GRPOTrainer):
    Config = ShortGRPOConfig

    def advantages(self, trajs, groups):
        self.shaped = [t.reward - self.g.turn_penalty * t.turns for t in trajs]
        charged = [dataclasses.replace(t, reward=r) for t, r in zip(trajs, self.shaped)]
        adv, rows, metrics = super().advantages(charged, groups)
        metrics["turn_penalty"] = self.g.turn_penalty
        return adv, rows, metrics
'''


def test_an_algorithm_from_an_installed_package_is_configured_and_trains_a_step(tmp_path, monkeypatch):
    from agentgym.trainers import ALGORITHMS, build_trainer

    install(tmp_path, monkeypatch, ALGORITHMS, "short_grpo", SHORT_GRPO, "short_grpo = short_grpo:ShortGRPO")
    assert "short_grpo" in ALGORITHMS.names()
    help_lines = config_help(TrainConfig)
    assert any(ln.strip().startswith("short_grpo.turn_penalty (float, default 0.1)") for ln in help_lines)
    assert any(ln.strip().startswith("short_grpo.eps_high (float, default 0.28)") for ln in help_lines)
    with pytest.raises(ConfigError, match=re.escape("did you mean 'short_grpo.turn_penalty'")):
        tiny_config(tmp_path / "bad", "algo=short_grpo", "short_grpo.turn_penlty=2")
    with pytest.raises(ConfigError, match=re.escape("short_grpo.turn_penalty must be >= 0")):
        tiny_config(tmp_path / "bad", "algo=short_grpo", "short_grpo.turn_penalty=-1")
    with pytest.raises(ConfigError, match=r"samples_per_task must be >= 2"):  # GRPO's own check still runs
        tiny_config(tmp_path / "bad", "algo=short_grpo", "samples_per_task=1")

    cfg = tiny_config(tmp_path / "run", "steps=1", "algo=short_grpo", "short_grpo.turn_penalty=0.25")
    assert cfg.short_grpo.turn_penalty == 0.25
    with build_trainer(cfg) as trainer:
        assert type(trainer).__name__ == "ShortGRPO"
        trajs, _ = trainer.collect(0, 2)
        metrics = trainer.update(trajs, 2)
        assert trainer.shaped == [t.reward - 0.25 * t.turns for t in trajs]
        assert metrics["turn_penalty"] == 0.25 and metrics["grad_norm"] > 0


def test_an_unknown_algorithm_is_named_with_the_registered_ones(tmp_path):
    with pytest.raises(
        ConfigError, match=r"algo: unknown algorithm 'grpoo': registered are gigpo, grpo, ppo; did you mean 'grpo'"
    ):
        tiny_config(tmp_path, "algo=grpoo")
