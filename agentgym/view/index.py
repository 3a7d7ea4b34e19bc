"""The episode index of a trajectory file: each episode's place in the file and the columns
the episode table filters and sorts by, built once and cached outside the run folder.

A trajectory file of 100,000 episodes takes far longer to parse than a page may take to
open, so the first open reads the file once (with a progress line) and keeps, per episode,
its byte offset and length (JSONL) or row (Parquet), and its table columns, in
`$AGENTGYM_CACHE/view/` (the server never writes into the folders it shows). The key is
the file's absolute path, size and modification time: a file written again is indexed
again. Later opens load the columns in a fraction of a second, and an episode is read by
its offset alone.

Example:
    >>> index = EpisodeIndex.open("runs/eval/trajectories.jsonl")  # doctest: +SKIP
    >>> rows = index.select(end_reason="failure", sort="-turns")     # doctest: +SKIP
    >>> traj = index.episode(int(rows[0]))                           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.trajectory import Trajectory
from agentgym.trajectory_files import TrajectoryFileError, parquet_row, trajectory_from_row

__all__ = ["COLUMNS", "EpisodeIndex", "index_dir"]

#: Bumped when the cached columns change: an older cache is rebuilt, never misread.
INDEX_VERSION = 1

#: The table's columns: name -> numpy dtype ("U" columns are strings).
COLUMNS: dict[str, str] = {
    "env_id": "U",
    "task_id": "U",
    "sample": "i8",
    "horizon": "i8",
    "end_reason": "U",
    "reward": "f8",
    "turns": "i8",
    "generated_tokens": "i8",
    "tokens": "i8",
    "tool_calls": "i8",
    "invalid_actions": "i8",
    "summaries": "i8",
    "success": "?",
    "error": "U",
}


def index_dir() -> Path:
    """Where indexes are cached: `$AGENTGYM_CACHE/view` (default `~/.cache/agentgym/view`)."""
    from agentgym.policy.models import cache_dir

    return cache_dir() / "view"


def _key(path: Path) -> str:
    st = path.stat()
    ident = f"{INDEX_VERSION}\0{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def _columns_of(row: dict[str, Any]) -> dict[str, Any]:
    """One episode's table columns, from its JSON object (tolerant: a missing field is 0/"")."""

    def num(key: str, default: float = 0) -> Any:
        v = row.get(key, default)
        return v if isinstance(v, int | float) and not isinstance(v, bool) else default

    tokens = 0
    for seg in row.get("segments") or []:
        if isinstance(seg, dict):
            tokens += len(seg.get("prompt_ids") or []) + len(seg.get("completion_ids") or [])
    reward = row.get("reward")
    return {
        "env_id": str(row.get("env_id", "")),
        "task_id": str(row.get("task_id", "")),
        "sample": num("sample"),
        "horizon": num("horizon"),
        "end_reason": str(row.get("end_reason", "")),
        "reward": float(reward) if isinstance(reward, int | float) and not isinstance(reward, bool) else math.nan,
        "turns": num("turns"),
        "generated_tokens": num("generated_tokens"),
        "tokens": tokens,
        "tool_calls": num("tool_calls"),
        "invalid_actions": num("invalid_actions"),
        "summaries": num("summaries"),
        "success": bool(row.get("success", False)),
        "error": str(row.get("error") or "")[:120],  # the table needs only its start
    }


class _Progress:
    """A line on stderr every second while a large file is indexed: done, rate, ETA."""

    def __init__(self, path: Path, total: int):
        self.path, self.total = path, max(total, 1)
        self.t0 = self.last = time.perf_counter()

    def __call__(self, done: int, episodes: int) -> None:
        now = time.perf_counter()
        if now - self.last < 1.0:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - done) / max(rate, 1e-9)
        print(
            f"agentgym view: indexing {self.path.name}: {done / self.total:.0%} ({episodes} episodes, "
            f"{rate / 1e6:.0f} MB/s, ETA {eta:.0f} s)",
            file=sys.stderr,
            flush=True,
        )


class EpisodeIndex:
    """A trajectory file's episodes as columns (numpy arrays, one entry per episode) and
    where each lies in the file; `episode(i)` reads one. Lines that cannot be read as a
    trajectory are left out of the table and counted in `skipped`."""

    def __init__(self, path: Path, columns: dict[str, np.ndarray], offsets: np.ndarray, skipped: int):
        self.path = path
        self.columns = columns
        self.offsets = offsets  # JSONL: (byte offset, length) per episode; Parquet: (row, 0)
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self.offsets)

    # ------------------------------------------------------------------ building and caching

    @classmethod
    def open(cls, path: str | Path, cache: Path | None = None) -> EpisodeIndex:
        """The file's index: from the cache when the file is unchanged, else built and cached
        (a cache that cannot be written is only a warning: the index is rebuilt next time)."""
        path = Path(path)
        if path.suffix not in (".jsonl", ".parquet") or not path.is_file():
            raise TrajectoryFileError(f"{path}: not a trajectory file (.jsonl or .parquet)")
        where = (cache or index_dir()) / f"{_key(path)}.npz"
        if where.exists():
            try:
                return cls._load(path, where)
            except (OSError, ValueError, KeyError, EOFError):
                pass  # a damaged cache is rebuilt
        index = cls._build_jsonl(path) if path.suffix == ".jsonl" else cls._build_parquet(path)
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            tmp = where.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, offsets=index.offsets, skipped=np.array(index.skipped), **index.columns)
            os.replace(tmp, where)
        except OSError as exc:
            print(f"agentgym view: warning: could not cache the index of {path} in {where}: {exc}", file=sys.stderr)
        return index

    @classmethod
    def _load(cls, path: Path, where: Path) -> EpisodeIndex:
        with np.load(where, allow_pickle=False) as data:
            columns = {name: data[name] for name in COLUMNS}
            return cls(path, columns, data["offsets"], int(data["skipped"]))

    @staticmethod
    def _as_arrays(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        out = {}
        for name, kind in COLUMNS.items():
            values = [r[name] for r in rows]
            out[name] = np.array(values, dtype=str) if kind == "U" else np.array(values, dtype=kind)
            if kind == "U" and not values:
                out[name] = np.array([], dtype="U1")
        return out

    @classmethod
    def _build_jsonl(cls, path: Path) -> EpisodeIndex:
        rows, offsets, skipped = [], [], 0
        progress = _Progress(path, path.stat().st_size)
        offset = 0
        with open(path, "rb") as fh:
            for raw in fh:
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except (UnicodeDecodeError, ValueError, RecursionError):
                    skipped += 1
                    continue
                if not isinstance(row, dict) or not isinstance(row.get("task_id"), str):
                    skipped += 1
                    continue
                rows.append(_columns_of(row))
                offsets.append((start, len(raw)))
                progress(offset, len(rows))
        return cls(path, cls._as_arrays(rows), np.array(offsets, dtype="i8").reshape(-1, 2), skipped)

    @classmethod
    def _build_parquet(cls, path: Path) -> EpisodeIndex:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
            names = set(pf.schema_arrow.names)
            wanted = [c for c in COLUMNS if c in names and c != "tokens"] + ["segments"]
            table = pf.read(columns=[c for c in wanted if c in names])
        except (OSError, pa.ArrowException) as exc:
            raise TrajectoryFileError(f"{path}: not a readable Parquet file ({exc})") from None
        data = table.to_pydict()
        n = table.num_rows
        rows = [_columns_of({k: v[i] for k, v in data.items()}) for i in range(n)]
        offsets = np.stack([np.arange(n, dtype="i8"), np.zeros(n, dtype="i8")], axis=1)
        return cls(path, cls._as_arrays(rows), offsets, 0)

    # ------------------------------------------------------------------ reading

    def episode(self, i: int) -> Trajectory:
        """Episode `i` of the table, read from the file by its offset."""
        if not 0 <= i < len(self):
            raise IndexError(f"{self.path} has {len(self)} episodes, not {i + 1}")
        start, length = (int(x) for x in self.offsets[i])
        if self.path.suffix == ".jsonl":
            with open(self.path, "rb") as fh:
                fh.seek(start)
                raw = fh.read(length)
            return trajectory_from_row(json.loads(raw), f"{self.path}: byte {start}")
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.path)
        row_index = start
        for g in range(pf.num_row_groups):
            size = pf.metadata.row_group(g).num_rows
            if row_index < size:
                row = pf.read_row_group(g).slice(row_index, 1).to_pylist()[0]
                return trajectory_from_row(parquet_row(row), f"{self.path}: row {start + 1}")
            row_index -= size
        raise IndexError(f"{self.path}: row {start} is past the file's end (was it rewritten?)")

    # ------------------------------------------------------------------ the table

    def select(
        self,
        *,
        task: str = "",
        horizon: int | None = None,
        end_reason: str = "",
        success: bool | None = None,
        min_reward: float | None = None,
        max_reward: float | None = None,
        sort: str = "",
    ) -> np.ndarray:
        """The episodes (indices) that pass the filters, in the order `sort` asks for: a
        column name, `-name` for descending; ties (and no sort) keep the file's order."""
        c = self.columns
        keep = np.ones(len(self), dtype=bool)
        if task:
            keep &= np.char.find(c["task_id"], task) >= 0
        if horizon is not None:
            keep &= c["horizon"] == horizon
        if end_reason:
            keep &= c["end_reason"] == end_reason
        if success is not None:
            keep &= c["success"] == success
        if min_reward is not None:
            keep &= c["reward"] >= min_reward
        if max_reward is not None:
            keep &= c["reward"] <= max_reward
        rows = np.flatnonzero(keep)
        name = sort.lstrip("-")
        if name:
            if name not in c:
                raise KeyError(f"no column {name!r}: one of {sorted(c)}")
            values = c[name][rows]
            order = np.argsort(values, kind="stable")
            if sort.startswith("-"):
                # Descending with ties in the file's order: reverse a stable sort of the reversed rows.
                order = len(rows) - 1 - np.argsort(values[::-1], kind="stable")[::-1]
            rows = rows[order]
        return rows

    def counts(self, name: str) -> dict[str, int]:
        """How many episodes have each value of a column (for the filter menus)."""
        values, counts = np.unique(self.columns[name], return_counts=True)
        return {str(v): int(n) for v, n in zip(values, counts, strict=True)}
