"""Strict JSON out: every file agentgym writes parses with any JSON reader.

Python's `json` writes NaN and Infinity as bare `NaN` / `Infinity`, which strict parsers
(JavaScript's, jq, Go's, most databases) reject; a rate with no episode to count
(`mean_turns_success` when nothing succeeded) is NaN. They are written as `null`.

Example:
    >>> dumps({"success": float("nan"), "turns": [1.5, float("inf")]})
    '{"success": null, "turns": [1.5, null]}'
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "finite"]


def finite(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None (containers copied)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` that writes non-finite floats as `null` (see the module docstring)."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:  # only then walk the object: most records have no NaN
        return json.dumps(finite(obj), allow_nan=False, **kwargs)
