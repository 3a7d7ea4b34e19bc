"""Context strategies and algorithms from installed packages: found by name through their
entry points, configured by a section of their own, and trained with like built-ins."""

from __future__ import annotations

import re
import sys
import textwrap

import pytest

from agentgym.config import ConfigError, config_help
from agentgym.rollout.context import CONTEXTS
from agentgym.train_config import TrainConfig
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
