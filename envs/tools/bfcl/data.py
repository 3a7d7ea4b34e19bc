"""The BFCL v4 multi-turn data shipped in the `bfcl-eval` package, and its tool schemas.

`bfcl-eval` declares heavy dependencies (and pins numpy 1.26) that the multi-turn data,
backends and checker do not use, so it is installed without them:

    pip install --no-deps bfcl-eval==2026.3.23 mpmath

Only light modules of the package are imported: the backend classes under
`eval_checker/multi_turn_eval/func_source_code/` (their imports are the standard library
and `mpmath`), the multi-turn checker, and two constant tables.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["BFCL_VERSION", "CATEGORIES", "INSTALL_COMMAND", "Entry", "data_dir", "load_category", "tool_schema"]

#: The bfcl-eval release these environments were written and checked against.
BFCL_VERSION = "2026.3.23"
INSTALL_COMMAND = f"pip install --no-deps bfcl-eval=={BFCL_VERSION} mpmath"
#: The four multi-turn categories of BFCL v4, in the leaderboard's order.
CATEGORIES = ("base", "miss_func", "miss_param", "long_context")


def data_dir() -> Path:
    """The `data/` folder of the installed bfcl-eval package, or an error saying how to install it."""
    try:
        import bfcl_eval
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"the BFCL environments need the bfcl-eval package, which is not installed: run `{INSTALL_COMMAND}` "
            "(--no-deps: its declared dependencies are heavy and not needed here)"
        ) from exc
    path = Path(bfcl_eval.__file__).parent / "data"
    if not (path / "BFCL_v4_multi_turn_base.json").exists():
        raise FileNotFoundError(
            f"bfcl-eval is installed at {path.parent} but has no BFCL v4 multi-turn data; "
            f"install the release these envs support: `{INSTALL_COMMAND}`"
        )
    return path


@dataclass(frozen=True)
class Entry:
    """One BFCL multi-turn test entry with its ground truth.

    Attributes:
        id: BFCL's id, e.g. "multi_turn_base_0".
        category: one of `CATEGORIES`.
        questions: the user message of each turn; None for a miss_func turn that only
            adds the held-out functions.
        initial_config: the backends' starting state, by class name.
        involved_classes: the backend classes of the entry, in BFCL's order.
        held_out: miss_func only: turn index -> names of the functions added at that turn.
        ground_truth: the ground-truth calls of each turn, as Python call strings.
    """

    id: str
    category: str
    questions: tuple[str | None, ...]
    initial_config: dict[str, Any]
    involved_classes: tuple[str, ...]
    held_out: dict[int, tuple[str, ...]]
    ground_truth: tuple[tuple[str, ...], ...]

    @property
    def long_context(self) -> bool:
        """Whether the backends load their long-context scenario (as BFCL decides it, from the id)."""
        return "long_context" in self.category or "composite" in self.category


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _question(turn: list[dict[str, Any]]) -> str | None:
    if not turn:
        return None
    return "\n".join(m["content"] for m in turn)


@cache
def load_category(category: str) -> tuple[Entry, ...]:
    """Every entry of one multi-turn category, in BFCL's order."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL multi-turn category {category!r}; choose from {list(CATEGORIES)}")
    root = data_dir()
    name = f"BFCL_v4_multi_turn_{category}.json"
    entries = _read_jsonl(root / name)
    answers = {a["id"]: a["ground_truth"] for a in _read_jsonl(root / "possible_answer" / name)}
    out = []
    for e in entries:
        truth = answers[e["id"]]
        if len(truth) != len(e["question"]):
            raise ValueError(f"{e['id']}: {len(e['question'])} turns but {len(truth)} ground-truth turns")
        out.append(
            Entry(
                id=e["id"],
                category=category,
                questions=tuple(_question(t) for t in e["question"]),
                initial_config=e.get("initial_config", {}),
                involved_classes=tuple(e["involved_classes"]),
                held_out={int(k): tuple(v) for k, v in e.get("missed_function", {}).items()},
                ground_truth=tuple(tuple(t) for t in truth),
            )
        )
    return tuple(out)


@cache
def function_docs(class_name: str) -> tuple[dict[str, Any], ...]:
    """BFCL's function documents of one backend class (its `multi_turn_func_doc` file)."""
    from bfcl_eval.constants.executable_backend_config import MULTI_TURN_FUNC_DOC_FILE_MAPPING

    return tuple(_read_jsonl(data_dir() / "multi_turn_func_doc" / MULTI_TURN_FUNC_DOC_FILE_MAPPING[class_name]))


def _cast_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """BFCL's `_cast_to_openai_type` for OpenAI-style models: Gorilla type names to JSON Schema."""
    from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI as mapping

    for prop in properties.values():
        kind = prop.get("type")
        if kind == "float":
            prop["format"] = "float"
            prop["description"] = prop.get("description", "") + " This is a float type value."
        prop["type"] = mapping.get(kind, "string") if kind is not None else "string"
        if prop["type"] in ("array", "object"):
            if "properties" in prop:
                prop["properties"] = _cast_properties(prop["properties"])
            elif "items" in prop:
                items = prop["items"]
                items["type"] = mapping[items["type"]]
                if items["type"] == "array" and "items" in items:
                    items["items"]["type"] = mapping[items["items"]["type"]]
                elif items["type"] == "object" and "properties" in items:
                    items["properties"] = _cast_properties(items["properties"])
    return properties


def tool_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-style tool schema of one BFCL function document, converted as BFCL converts
    it for OpenAI-compatible models (types mapped, floats flagged, the response schema kept)."""
    item = copy.deepcopy(doc)
    item["parameters"]["type"] = "object"
    item["parameters"]["properties"] = _cast_properties(item["parameters"]["properties"])
    return {"type": "function", "function": item}
