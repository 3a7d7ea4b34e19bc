"""Loading real corpora and question sets from JSONL files.

Corpus lines (one document each), in the layouts BEIR, KILT-style dumps and
Pyserini/FlashRAG use:

    {"id": "12", "title": "Vorel Press", "text": "Vorel Press is a printing press ..."}
    {"_id": "12", "title": "...", "text": "..."}
    {"id": "12", "contents": "\\"Vorel Press\\"\\nVorel Press is a printing press ..."}

Question lines, in the layouts HotpotQA, Natural Questions (open) and FlashRAG use:

    {"_id": "5a8b", "question": "...", "answer": "...", "supporting_facts": [["Title", 0], ...], "level": "hard"}
    {"question": "...", "answer": ["...", "..."]}
    {"id": "q1", "question": "...", "golden_answers": ["..."], "supporting_titles": ["..."]}

A malformed line is a configuration error: it raises `ValueError` naming the file and line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from agentgym.envs.search.corpus import Corpus, Document

__all__ = ["Question", "load_corpus", "load_questions"]


@dataclass(frozen=True)
class Question:
    """A question from a question file.

    Attributes:
        id: the line's `id`/`_id`/`qid`, else "line<N>".
        question: the question text.
        answers: every accepted answer (at least one).
        supporting_titles: titles of the documents that support the answer (may be empty).
        hops: the line's `hops`, else the number of distinct supporting titles, else None.
        level: the line's `level` (HotpotQA: easy/medium/hard), if any.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    supporting_titles: tuple[str, ...] = ()
    hops: int | None = None
    level: str | None = None


def _lines(path: str | os.PathLike):
    """(line number, parsed JSON object) for each non-blank line; ValueError on bad JSON."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a JSONL file, one JSON object per line)")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                hint = ""
                if n == 1 and line.lstrip().startswith("["):
                    hint = "; this looks like a JSON array: convert it with `jq -c '.[]' FILE.json > FILE.jsonl`"
                raise ValueError(f"{path}, line {n}: invalid JSON ({exc.msg}, column {exc.colno}){hint}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}, line {n}: expected a JSON object, got {type(obj).__name__}")
            yield n, obj


def _string(obj: dict[str, Any], keys: tuple[str, ...], where: str, required: bool = True) -> str | None:
    for key in keys:
        if key in obj and obj[key] is not None:
            value = obj[key]
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
            return str(value)
    if required:
        raise ValueError(f"{where}: missing {' or '.join(repr(k) for k in keys)}; the line has keys {sorted(obj)}")
    return None


def _document(obj: dict[str, Any], where: str) -> Document:
    doc_id = _string(obj, ("id", "_id", "doc_id", "docid"), where)
    if "contents" in obj and "text" not in obj:
        contents = _string(obj, ("contents",), where) or ""
        head, sep, body = contents.partition("\n")
        title = _string(obj, ("title",), where, required=False)
        if title is None:  # Pyserini/FlashRAG: the first line is the quoted title
            title, contents = head.strip().strip('"'), body if sep else ""
        return Document(doc_id, title, contents)
    text = _string(obj, ("text",), where)
    return Document(doc_id, _string(obj, ("title",), where, required=False) or "", text)


def load_corpus(path: str | os.PathLike) -> Corpus:
    """Load a JSONL corpus (`id`, `title`, `text`; see the module doc for other layouts).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed line (the message names the file and line), duplicate
            ids, or an empty file.
    """
    docs = [_document(obj, f"{path}, line {n}") for n, obj in _lines(path)]
    if not docs:
        raise ValueError(f"{path}: the corpus has no documents")
    return Corpus(docs, name=str(path))


@lru_cache(maxsize=4)
def _cached_corpus(path: str, mtime_ns: int, size: int) -> Corpus:
    return load_corpus(path)


def cached_corpus(path: str | os.PathLike) -> Corpus:
    """`load_corpus`, memoised per process while the file is unchanged."""
    stat = Path(path).stat()
    return _cached_corpus(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


def _answers(obj: dict[str, Any], where: str) -> tuple[str, ...]:
    for key in ("answers", "answer", "golden_answers"):
        if key not in obj:
            continue
        value = obj[key]
        values = value if isinstance(value, list) else [value]
        # SQuAD-style {"text": [...]} answers
        if isinstance(value, dict) and isinstance(value.get("text"), list):
            values = value["text"]
        if not values or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{where}: {key!r} must be a string or a non-empty list of strings, got {value!r:.80}")
        answers = tuple(str(v) for v in values if str(v).strip())
        if not answers:
            raise ValueError(f"{where}: {key!r} has no non-empty answer")
        return answers
    raise ValueError(f"{where}: missing 'answer', 'answers' or 'golden_answers'; the line has keys {sorted(obj)}")


def _supporting_titles(obj: dict[str, Any], where: str) -> tuple[str, ...]:
    if "supporting_titles" in obj:
        value = obj["supporting_titles"]
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise ValueError(f"{where}: 'supporting_titles' must be a list of strings")
        return tuple(dict.fromkeys(value))
    if "supporting_facts" in obj:
        value = obj["supporting_facts"]
        if isinstance(value, dict) and isinstance(value.get("title"), list):  # Hugging Face hotpot_qa layout
            titles = value["title"]
        elif isinstance(value, list) and all(isinstance(f, list | tuple) and f for f in value):
            titles = [f[0] for f in value]  # HotpotQA: [[title, sentence index], ...]
        else:
            raise ValueError(f"{where}: 'supporting_facts' must be [[title, sentence], ...] or {{'title': [...]}}")
        if not all(isinstance(t, str) for t in titles):
            raise ValueError(f"{where}: the titles in 'supporting_facts' must be strings")
        return tuple(dict.fromkeys(titles))
    return ()


def load_questions(path: str | os.PathLike) -> list[Question]:
    """Load a JSONL question set (`question`, `answer`/`answers`, optional supporting titles).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed line (the message names the file and line), duplicate
            ids, or an empty file.
    """
    out: list[Question] = []
    seen: dict[str, int] = {}
    for n, obj in _lines(path):
        where = f"{path}, line {n}"
        text = _string(obj, ("question",), where)
        if not text.strip():
            raise ValueError(f"{where}: 'question' is empty")
        qid = _string(obj, ("id", "_id", "qid"), where, required=False) or f"line{n}"
        if qid in seen:
            raise ValueError(f"{where}: question id {qid!r} already used on line {seen[qid]}")
        seen[qid] = n
        titles = _supporting_titles(obj, where)
        hops = obj.get("hops")
        if hops is not None and (isinstance(hops, bool) or not isinstance(hops, int) or hops < 1):
            raise ValueError(f"{where}: 'hops' must be a positive integer, got {hops!r}")
        level = obj.get("level")
        out.append(
            Question(
                id=qid,
                question=text.strip(),
                answers=_answers(obj, where),
                supporting_titles=titles,
                hops=hops if hops is not None else (len(titles) or None),
                level=str(level) if level is not None else None,
            )
        )
    if not out:
        raise ValueError(f"{path}: the question file has no questions")
    return out
