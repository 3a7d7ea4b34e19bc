"""Shared pieces of the trainer tests: a tiny env whose reward a random policy sometimes
earns (so GRPO groups have signal), a tiny training config, and a way to interrupt a run
mid-step with a real signal. No tests here."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
import torch
from agentgym.trainers.config import TrainConfig, load_train_config

import agentgym
from agentgym.env import Outcome, Task, TextEnv

COIN_ID = "agentgym/TestCoin-v0"


class CoinEnv(TextEnv):
    """Say anything; a reply whose characters sum to a multiple of 3 wins (about 1 in 3)."""

    default_max_turns = 2

    def make_tasks(self, split: str) -> list[Task]:
        return [Task(f"{split}-{i}", f"Coin {i}: say something.", split) for i in range(4)]

    def setup(self, task: Task) -> str:
        return task.instruction

    def transition(self, action: str) -> Outcome:
        if sum(map(ord, action)) % 3 == 0:
            return Outcome("Yes!", reward=1.0, terminated=True, success=True)
        return Outcome("No, say something else.")


class CoinOracle:
    """A scripted CoinEnv player for warm starts: "abc" always wins (97 + 98 + 99 = 294)."""

    def respond(self, messages: list[dict[str, Any]]) -> str:
        return "abc"


# A string entry point: env workers in other processes can import it too.
agentgym.register("TestCoin-v0", f"{__name__}:CoinEnv")


def tiny_config(tmp_path: Any, *overrides: str) -> TrainConfig:
    """GRPO on CoinEnv with the tiny random model: 2 tasks x 4 rollouts, 2 turns, 4 tokens a turn."""
    base = [
        "policy.model=tiny-random",
        f"env.id={COIN_ID}",
        "sampling.max_new_tokens=4",
        "rollout.max_concurrent=8",
        "curriculum.start=2",
        "tasks_per_step=2",
        "samples_per_task=4",
        "optim.lr=0.01",
        "optim.micro_batch=4",
        "eval.at_start=false",
        "eval.at_end=false",
        "tensorboard=false",
        "progress=false",
        "save_final=false",
        f"output_dir={tmp_path}",
    ]
    return load_train_config(None, [*base, *overrides])


def signal_during_step(trainer: Any, step: int, sig: signal.Signals = signal.SIGTERM, times: int = 1) -> Any:
    """`trainer`, set to send `sig` to this very process `times` times during the update of
    step `step` (the index), as a Ctrl-C or a scheduler's SIGTERM arrives mid-step.

    Unhandled, the signal would kill the test process (SIGTERM) or abort the whole session
    (KeyboardInterrupt), so it is sent only once training has put a handler of its own in place.
    """
    update = trainer.update

    def update_then_signal(trajs: list, horizon: int) -> dict[str, float]:
        if trainer.step == step:
            handler = signal.getsignal(sig)
            assert handler not in (signal.SIG_DFL, signal.default_int_handler), f"training does not handle {sig.name}"
            for _ in range(times):
                os.kill(os.getpid(), sig)  # os.kill runs this process's handler before it returns
        return update(trajs, horizon)

    trainer.update = update_then_signal
    return trainer


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt during the test, as in a terminal, even when the
    suite runs as a shell's background job (which starts with SIGINT ignored, and training
    leaves an ignored signal ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def default_ctrl_c() -> None:
    """`preexec_fn` of a child process that must take Ctrl-C as a terminal's would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run ~5x faster on one thread than on two oversubscribed ones (the
    machine's cores are shared); the previous setting is restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
