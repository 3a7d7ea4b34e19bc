"""Checkpoints that resume exactly: trainable weights (or the LoRA adapter), extra modules
(a value head), optimizer, LR schedule, curriculum, RNG states (python, numpy, torch) and
the step, written atomically to `output_dir/checkpoints/step-NNNNNN/`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentgym import jsonio
from agentgym.errors import UserError

__all__ = [
    "CheckpointError",
    "apply_checkpoint",
    "latest_checkpoint",
    "link_or_copy",
    "load_checkpoint",
    "newest_intact_checkpoint",
    "read_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]


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
    files: dict[str, Any] | None = None,
    model_state: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint `step` (the number of steps done) and keep the `keep` newest.

    `state` is JSON-safe (curriculum, last metrics, ...); RNG states are taken here so
    that they are the ones the next step starts from. `links`: files written once per run
    (a KL reference) that the checkpoint holds too, as hard links (copies where links fail).
    `files`: optional objects written with torch.save under their names (`pending.pt`: the
    next step's rollouts, collected by asynchronous training before the checkpoint).
    `model_state`, `optimizer_state`: what to write instead of the model's trainable state
    and the optimizer's own (a sharded model's, gathered: `Dist.full_states`).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(model_state if model_state is not None else trainable_state(model), tmp / "model.pt")
    torch.save({k: m.state_dict() for k, m in modules.items()}, tmp / "modules.pt")
    optim = optimizer_state if optimizer_state is not None else optimizer.state_dict()
    torch.save({"optimizer": optim, "scheduler": scheduler.state_dict()}, tmp / "optim.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(jsonio.dumps({"step": step, **state}, indent=1))
    for name, obj in (files or {}).items():
        torch.save(obj, tmp / name)
    for name, src in (links or {}).items():
        link_or_copy(src, tmp / name)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)  # a crash mid-write never leaves a half checkpoint under the real name
    for old in sorted(root.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return final


def link_or_copy(src: Path, dst: Path) -> None:
    """`dst` as a hard link to `src` (no second copy of the bytes), or a copy where links fail."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def latest_checkpoint(root: str | Path) -> Path | None:
    done = sorted(p for p in Path(root).glob("step-*") if (p / "state.json").exists())
    return done[-1] if done else None


class CheckpointError(UserError):
    """A checkpoint that cannot be restored (a damaged or missing file); names it."""


#: The files of a checkpoint, and how each is read.
_FILES = {
    "model.pt": True,  # weights_only
    "modules.pt": True,
    "optim.pt": False,
    "rng.pt": False,
}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Every file of a checkpoint, read into memory and checked, before anything is applied:
    a `CheckpointError` naming the first damaged or missing file."""
    path = Path(path)
    out: dict[str, Any] = {}
    for name, weights_only in _FILES.items():
        try:
            out[name] = torch.load(path / name, weights_only=weights_only, map_location="cpu")
        except Exception as exc:  # empty, cut short, not a torch file, missing
            raise CheckpointError(f"checkpoint {path}: {name} cannot be read ({type(exc).__name__}: {exc})") from exc
    try:
        out["state"] = json.loads((path / "state.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path}: state.json cannot be read ({exc})") from exc
    optim = out["optim.pt"]
    if not (isinstance(optim, dict) and {"optimizer", "scheduler"} <= set(optim)):
        raise CheckpointError(f"checkpoint {path}: optim.pt holds no optimizer and scheduler state")
    if not isinstance(out["state"], dict) or not isinstance(out["state"].get("step"), int):
        raise CheckpointError(f"checkpoint {path}: state.json has no step")
    for name, weights_only in (("reference.pt", True), ("pending.pt", False)):  # files some checkpoints hold
        if (path / name).exists():
            try:
                out[name] = torch.load(path / name, weights_only=weights_only, map_location="cpu")
            except Exception as exc:
                raise CheckpointError(
                    f"checkpoint {path}: {name} cannot be read ({type(exc).__name__}: {exc})"
                ) from exc
    return out


def apply_checkpoint(
    ckpt: dict[str, Any],
    path: Path,
    model: Any,
    modules: dict[str, torch.nn.Module],
    optimizer: Any,
    scheduler: Any,
    load_full: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Restore what `read_checkpoint` read (RNG states included); returns its state dict.

    Tensors were read onto the CPU and are copied to where the model lives: saved from
    cuda:0, they would otherwise land on cuda:0 in every data-parallel rank that resumes.
    `load_full(model_state, optimizer_state)` restores a sharded model and its optimizer
    from whole states (`Dist.load_full_states`) in place of `load_state_dict`.
    """
    weights = ckpt["model.pt"]
    own = model.state_dict()
    unexpected = [k for k in weights if k not in own]
    if unexpected:  # checked before anything changes
        raise CheckpointError(f"checkpoint {path} holds weights the model lacks: {unexpected[:5]} (another model?)")
    for name, module in modules.items():
        module.load_state_dict(ckpt["modules.pt"][name])
    if load_full is not None:
        load_full(weights, ckpt["optim.pt"]["optimizer"])
    else:
        # Not strict: a LoRA checkpoint holds only the adapter; the frozen base comes from its name.
        model.load_state_dict(weights, strict=False)
        optimizer.load_state_dict(ckpt["optim.pt"]["optimizer"])
    scheduler.load_state_dict(ckpt["optim.pt"]["scheduler"])
    set_rng_state(ckpt["rng.pt"])
    return ckpt["state"]


def load_checkpoint(
    path: str | Path, model: Any, modules: dict[str, torch.nn.Module], optimizer: Any, scheduler: Any
) -> dict[str, Any]:
    """Read every file of checkpoint `path`, then restore them (nothing changes when a file
    is damaged: `CheckpointError`); returns its state dict."""
    path = Path(path)
    return apply_checkpoint(read_checkpoint(path), path, model, modules, optimizer, scheduler)


def newest_intact_checkpoint(root: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `root` whose files all read, with them; each newer one that
    is damaged is skipped with a warning naming it. None when there is no checkpoint;
    `CheckpointError` when there are some and none is intact."""
    candidates = sorted((p for p in Path(root).glob("step-*") if p.is_dir()), reverse=True)
    damaged = []
    for path in candidates:
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as exc:
            damaged.append(str(exc))
            print(f"agentgym: warning: skipping a damaged checkpoint: {exc}", file=sys.stderr, flush=True)
            continue
        if damaged:
            print(f"agentgym: warning: resuming from the newest intact checkpoint, {path}", file=sys.stderr, flush=True)
        return path, ckpt
    if damaged:
        raise CheckpointError(f"no intact checkpoint in {root}: {'; '.join(damaged)}")
    return None
