"""What the viewer shows: the paths given on the command line, what is inside them (eval,
train and experiment run folders; trajectory files), and the only way a URL names a file.

A URL names a file as `/r/K/REL`: the K-th path given and a path relative to it. `resolve`
refuses anything that leaves that path: a `..` part, an absolute part, a symbolic link
that points outside. Nothing else on the machine can be reached.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Refused", "Roots", "Run", "find_runs", "is_trajectory_file"]

#: Folders never searched for runs: checkpoints hold weights, not records.
SKIP_DIRS = {"checkpoints", "__pycache__", ".git", "node_modules"}
MAX_DEPTH = 8


class Refused(Exception):
    """A URL path outside the paths being served (or not there)."""


class Roots:
    """The paths given, resolved; `url` and `resolve` translate between files and URLs."""

    def __init__(self, paths: list[str | Path]):
        self.paths = []
        for p in paths:
            path = Path(p).expanduser()
            if not path.exists():
                raise FileNotFoundError(f"{p}: no such file or folder")
            self.paths.append(path.resolve())

    def url(self, path: Path) -> str:
        """`/r/K/REL` of a file or folder under the K-th root (the first that holds it)."""
        from urllib.parse import quote

        path = path.resolve()
        for k, root in enumerate(self.paths):
            if path == root:
                return f"/r/{k}/"
            if root in path.parents:
                return f"/r/{k}/" + quote(path.relative_to(root).as_posix())
        raise Refused(f"{path} is not under a served path")

    def label(self, path: Path) -> str:
        """How a page names a file or folder: the root's name and the path below it."""
        for root in self.paths:
            if path == root:
                return root.name
            if root in path.parents:
                return f"{root.name}/{path.relative_to(root).as_posix()}"
        return path.name

    def resolve(self, k: str, rel: str) -> Path:
        """The file or folder `/r/K/REL` names; `Refused` when it is not under root K."""
        if not k.isdigit() or int(k) >= len(self.paths):
            raise Refused(f"no served path number {k!r}")
        root = self.paths[int(k)]
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if any(p == ".." or "\\" in p or "\0" in p or ":" in p[:2] for p in parts):
            raise Refused(f"{rel!r}: a path with '..' (or a drive or NUL) is refused")
        path = root.joinpath(*parts).resolve()
        if path != root and root not in path.parents:
            raise Refused(f"{rel!r} leaves the served path (a link pointing outside?)")
        if not path.exists():
            raise Refused(f"{rel!r}: no such file")
        return path


def is_trajectory_file(path: Path) -> bool:
    """A .parquet file, or a .jsonl file whose first line is a trajectory (an object with
    task_id and segments); metrics.jsonl and other logs are not."""
    if path.suffix == ".parquet":
        return True
    if path.suffix != ".jsonl":
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    first = head.split(b"\n", 1)[0]
    return b'"task_id"' in first and b'"segments"' in first


@dataclass
class Run:
    """A run folder: `kind` eval (results.json), train (metrics.jsonl) or experiment
    (an experiment's results.csv); its trajectory files and evaluations."""

    path: Path
    kind: str
    trajectories: list[Path] = field(default_factory=list)
    evals: list[Path] = field(default_factory=list)  # eval folders inside a train run (eval/step-N)

    @property
    def name(self) -> str:
        return self.path.name

    def results(self) -> dict[str, Any] | None:
        """An eval run's results.json (None when unreadable)."""
        return read_json(self.path / "results.json")

    def metrics(self) -> list[dict[str, Any]]:
        """A train run's metrics.jsonl records (unreadable lines skipped)."""
        out = []
        try:
            lines = (self.path / "metrics.jsonl").read_text().splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def experiment_rows(self) -> list[dict[str, str]]:
        try:
            with open(self.path / "results.csv", newline="") as fh:
                return list(csv.DictReader(fh))
        except OSError:
            return []


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _kind(folder: Path, names: set[str]) -> str | None:
    if "metrics.jsonl" in names:
        return "train"
    if "results.json" in names and "horizons" in (read_json(folder / "results.json") or {}):
        return "eval"
    if "results.csv" in names:
        try:
            with open(folder / "results.csv") as fh:
                if fh.readline().startswith("arm,seed,point"):
                    return "experiment"
        except OSError:
            pass
    return None


def find_runs(roots: Roots) -> tuple[list[Run], list[Path]]:
    """The run folders under the roots and the trajectory files that belong to none (a
    trajectory file given on its own, say). A train run's eval/step-N folders are its
    evaluations, shown on its page and also as eval runs of their own."""
    runs: list[Run] = []
    loose: list[Path] = []
    for root in roots.paths:
        if root.is_file():
            if is_trajectory_file(root):
                loose.append(root)
            continue
        base_depth = len(root.parts)
        for dirpath, dirnames, filenames in os.walk(root):
            folder = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
            if len(folder.parts) - base_depth >= MAX_DEPTH:
                dirnames[:] = []
            names = set(filenames)
            kind = _kind(folder, names)
            trajs = [folder / f for f in sorted(filenames) if is_trajectory_file(folder / f)]
            if kind is None:
                owner = next((r for r in reversed(runs) if r.path in folder.parents), None)
                if owner is not None:
                    owner.trajectories += trajs
                else:
                    loose += trajs
                continue
            run = Run(folder, kind, trajs)
            runs.append(run)
            if kind == "eval":
                parent = next((r for r in runs if r.kind == "train" and r.path in folder.parents), None)
                if parent is not None:
                    parent.evals.append(folder)
    return runs, loose
