"""Trajectory files: JSONL (one trajectory per line) or Parquet, with a schema version.

Reading checks what it reads: a line that is not UTF-8, not JSON, not an object, or whose
fields have the wrong types (`turns="three"`) is a `TrajectoryFileError` that names the
file and the line. `load_trajectories(path, skip_bad=True)` skips such lines instead and
says how many it skipped, so one damaged line does not lose a whole run.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from agentgym import jsonio
from agentgym.errors import UserError
from agentgym.trajectory import END_REASONS, Trajectory

__all__ = ["TrajectoryFileError", "load_trajectories", "save_trajectories", "trajectory_from_row"]


class TrajectoryFileError(UserError, ValueError):
    """A trajectory file, or one of its lines, that cannot be read; the message names both."""


def save_trajectories(trajectories: list[Trajectory], path: str | Path) -> Path:
    """Write to `.jsonl` or `.parquet` (by suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [t.to_dict() for t in trajectories]
    if path.suffix == ".jsonl":
        with open(path, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(jsonio.dumps(row, ensure_ascii=False) + "\n")
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Nested free-form dicts become JSON strings: Parquet needs one schema for all rows.
        for row in rows:
            row["info"] = jsonio.dumps(row["info"], ensure_ascii=False)
            row["turn_info"] = jsonio.dumps(row["turn_info"], ensure_ascii=False)
            row["messages"] = json.dumps(row["messages"], ensure_ascii=False)
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        raise ValueError(f"unknown trajectory file type {path.suffix!r}: use .jsonl or .parquet")
    return path


def load_trajectories(path: str | Path, *, skip_bad: bool = False) -> list[Trajectory]:
    """Read trajectories written by `save_trajectories` (any schema version).

    Args:
        path: a `.jsonl` or `.parquet` file.
        skip_bad: skip lines (rows) that cannot be read, with a warning that counts them
            and shows the first; default: the first one is a `TrajectoryFileError`.
    """
    path = Path(path)
    if path.suffix not in (".jsonl", ".parquet"):
        raise TrajectoryFileError(f"{path}: unknown trajectory file type {path.suffix!r}: use .jsonl or .parquet")
    if not path.is_file():
        raise TrajectoryFileError(f"{path}: no such file")
    rows = _jsonl_rows(path) if path.suffix == ".jsonl" else _parquet_rows(path)
    out, bad = [], []
    for where, row in rows:
        try:
            if isinstance(row, TrajectoryFileError):
                raise row
            out.append(Trajectory.from_dict(_checked(row)))
        except TrajectoryFileError as exc:
            if not skip_bad:
                raise TrajectoryFileError(f"{path}:{where}: {exc}") from None
            bad.append(f"{where}: {exc}")
    if bad:
        print(
            f"agentgym: warning: {path}: skipped {len(bad)} damaged line(s) of {len(out) + len(bad)}; "
            f"first: line {bad[0]}",
            file=sys.stderr,
        )
    return out


def trajectory_from_row(row: Any, where: str) -> Trajectory:
    """One trajectory from its JSON object (a file's line or row), checked as
    `load_trajectories` checks it; a `TrajectoryFileError` naming `where` otherwise."""
    try:
        return Trajectory.from_dict(_checked(row))
    except TrajectoryFileError as exc:
        raise TrajectoryFileError(f"{where}: {exc}") from None


def _jsonl_rows(path: Path):
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, TrajectoryFileError(f"not UTF-8 text (byte {exc.start})")
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                cut = "" if text.endswith("\n") else "; the line is cut short (the file's end)"
                yield number, TrajectoryFileError(f"invalid JSON ({exc.msg} at column {exc.colno}){cut}")
                continue
            except (RecursionError, ValueError) as exc:
                yield number, TrajectoryFileError(f"invalid JSON ({type(exc).__name__}: {str(exc)[:100]})")
                continue
            yield number, row


def _parquet_rows(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise TrajectoryFileError(f"{path}: not a readable Parquet file ({exc})") from None
    for number, row in enumerate(rows, 1):
        try:
            yield f"row {number}", parquet_row(row)
        except TrajectoryFileError as exc:
            yield f"row {number}", exc


def parquet_row(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row as the JSON object a JSONL line holds: its free-form columns (info,
    turn_info, messages: JSON text in the file) decoded."""
    try:
        row["info"] = json.loads(row["info"])
        row["messages"] = json.loads(row["messages"])
        if row.get("turn_info") is not None:  # older files have no such column
            row["turn_info"] = json.loads(row["turn_info"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise TrajectoryFileError(f"info/turn_info/messages are not JSON ({exc})") from None
    return row


# ---------------------------------------------------------------------- field checks

_INT = ("sample", "horizon", "turns", "tool_calls", "invalid_actions", "generated_tokens", "summaries")
_INT_LISTS = ("turn_tokens", "turn_tool_calls", "turn_invalid")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) or v is None  # null: a NaN written by jsonio


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise TrajectoryFileError(what)


def _checked(row: Any) -> dict[str, Any]:
    """`row` when its fields have the types a `Trajectory` needs (nulls in float lists,
    written for NaN, become NaN again); else a `TrajectoryFileError` naming the field."""
    _require(isinstance(row, dict), f"a trajectory must be a JSON object, got {type(row).__name__}")
    for key in ("env_id", "task_id"):
        _require(isinstance(row.get(key), str), f"{key} must be a string, got {row.get(key)!r:.60}")
    for key in _INT:
        if key in row:
            _require(_is_int(row[key]), f"{key} must be an integer, got {row[key]!r:.60}")
    for key in _INT_LISTS:
        if key in row:
            _require(isinstance(row[key], list) and all(map(_is_int, row[key])), f"{key} must be a list of integers")
    if "turn_rewards" in row:
        _require(
            isinstance(row["turn_rewards"], list) and all(map(_is_number, row["turn_rewards"])),
            "turn_rewards must be a list of numbers",
        )
        row["turn_rewards"] = [math.nan if v is None else v for v in row["turn_rewards"]]
    if "reward" in row:
        _require(_is_number(row["reward"]), f"reward must be a number, got {row['reward']!r:.60}")
        row["reward"] = math.nan if row["reward"] is None else row["reward"]
    for key in ("success", "retokenized"):
        if key in row:
            _require(isinstance(row[key], bool), f"{key} must be true or false, got {row[key]!r:.60}")
    if "end_reason" in row:
        _require(
            row["end_reason"] in END_REASONS,
            f"end_reason must be one of {list(END_REASONS)}, got {row['end_reason']!r:.60}",
        )
    _require(row.get("error") is None or isinstance(row["error"], str), "error must be a string or null")
    version = row.get("policy_version")
    _require(
        version is None or (isinstance(version, int) and not isinstance(version, bool) and version >= 0),
        f"policy_version must be a whole number >= 0 or null, got {version!r:.60}",
    )
    _require(
        isinstance(row.get("messages", []), list) and all(isinstance(m, dict) for m in row.get("messages", [])),
        "messages must be a list of objects",
    )
    _require(isinstance(row.get("info", {}), dict), "info must be an object")
    _require(
        isinstance(row.get("turn_info", []), list) and all(isinstance(d, dict) for d in row.get("turn_info", [])),
        "turn_info must be a list of objects",
    )
    segments = row.get("segments", [])
    _require(isinstance(segments, list), "segments must be a list")
    for i, seg in enumerate(segments):
        _check_segment(seg, f"segments[{i}]")
    return row


def _check_segment(seg: Any, where: str) -> None:
    _require(isinstance(seg, dict), f"{where} must be an object")
    for key in ("prompt_ids", "completion_ids", "loss_mask"):
        _require(
            isinstance(seg.get(key, []), list) and all(map(_is_int, seg.get(key, []))),
            f"{where}.{key} must be a list of integers",
        )
    logprobs = seg.get("logprobs", [])
    _require(
        isinstance(logprobs, list) and all(map(_is_number, logprobs)), f"{where}.logprobs must be a list of numbers"
    )
    seg["logprobs"] = [math.nan if v is None else v for v in logprobs]
    n = len(seg.get("completion_ids", []))
    _require(
        len(seg.get("loss_mask", [])) == n == len(seg["logprobs"]),
        f"{where}: completion_ids, loss_mask and logprobs must have the same length",
    )
    spans = seg.get("spans") or []
    _require(isinstance(spans, list), f"{where}.spans must be a list")
    for span in spans:
        _require(
            isinstance(span, dict)
            and _is_int(span.get("start"))
            and _is_int(span.get("end"))
            and 0 <= span["start"] <= span["end"] <= n,
            f"{where}.spans: each span needs 0 <= start <= end <= {n}",
        )
        _require(span.get("turn") is None or _is_int(span["turn"]), f"{where}.spans: turn must be an integer or null")
