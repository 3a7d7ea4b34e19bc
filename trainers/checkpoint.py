"""Checkpoints that resume exactly: trainable weights (or the LoRA adapter), extra modules
(a value head), optimizer, LR schedule, curriculum, RNG states (python, numpy, torch) and
the step, written atomically to `output_dir/checkpoints/step-NNNNNN/`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentgym import jsonio

__all__ = ["latest_checkpoint", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The weights that training changes: all of them for a full fine-tune, only the
    adapter for LoRA (the frozen base is reloaded from its name)."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    state = model.state_dict()
    if len(names) == sum(1 for _ in model.parameters()):
        return {k: v.detach().clone() for k, v in state.items()}
    return {k: v.detach().clone() for k, v in state.items() if k in names}


def save_checkpoint(
    root: str | Path,
    step: int,
    model: Any,
    modules: dict[str, torch.nn.Module],
    optimizer: Any,
    scheduler: Any,
    state: dict[str, Any],
    keep: int = 2,
    links: dict[str, Path] | None = None,
) -> Path:
    """Write checkpoint `step` (the number of steps done) and keep the `keep` newest.

    `state` is JSON-safe (curriculum, last metrics, ...); RNG states are taken here so
    that they are the ones the next step starts from. `links`: files written once per run
    (a KL reference) that the checkpoint holds too, as hard links (copies where links fail).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(trainable_state(model), tmp / "model.pt")
    torch.save({k: m.state_dict() for k, m in modules.items()}, tmp / "modules.pt")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optim.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(jsonio.dumps({"step": step, **state}, indent=1))
    for name, src in (links or {}).items():
        try:
            os.link(src, tmp / name)
        except OSError:
            shutil.copy2(src, tmp / name)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)  # a crash mid-write never leaves a half checkpoint under the real name
    for old in sorted(root.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    done = sorted(p for p in Path(root).glob("step-*") if (p / "state.json").exists())
    return done[-1] if done else None


def load_checkpoint(
    path: str | Path, model: Any, modules: dict[str, torch.nn.Module], optimizer: Any, scheduler: Any
) -> dict[str, Any]:
    """Restore everything `save_checkpoint` wrote (RNG states included); returns its state dict.

    Tensors are read onto the CPU and copied to where the model lives: saved from cuda:0,
    they would otherwise land on cuda:0 in every data-parallel rank that resumes.
    """
    path = Path(path)
    weights = torch.load(path / "model.pt", weights_only=True, map_location="cpu")
    # Not strict: a LoRA checkpoint holds only the adapter; the frozen base comes from its name.
    _, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected:
        raise RuntimeError(f"checkpoint {path} holds weights the model lacks: {unexpected[:5]} (another model?)")
    extra = torch.load(path / "modules.pt", weights_only=True, map_location="cpu")
    for name, module in modules.items():
        module.load_state_dict(extra[name])
    optim = torch.load(path / "optim.pt", weights_only=False, map_location="cpu")
    optimizer.load_state_dict(optim["optimizer"])
    scheduler.load_state_dict(optim["scheduler"])
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "state.json").read_text())
