"""Search tasks: multi-hop questions over the generated world, or questions from a file.

A generated question follows a chain of relations from a named entity, e.g. (3 hops)

    "In which city was the founder of the organisation that published "The Pale Letter" born?"

    work --publisher--> organisation --founder--> person --born_in--> city

Each hop needs one document: the work's names the publisher, the publisher's names the
founder, the founder's names the city. A question ends either on an entity (its name is
the answer: one hop per relation) or on an attribute of the last entity (a year, a
population, a language: one more hop to read it). The oracle searches each chain entity's
name with the relation's keyword, reads the next name from the top snippet, and answers:
`hops` searches plus one answer, which is `Task.min_turns`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

from agentgym.envs.search.data import Question
from agentgym.envs.search.scoring import normalize_answer
from agentgym.envs.search.world import ATTRIBUTES, RELATIONS, Entity, World

from agentgym.env import Task

__all__ = ["generated_tasks", "oracle_actions", "question_tasks"]

SPLIT_CODES = {"train": 0, "test": 1}

# How a question names the entity a relation leads to: "{x}" is the subject's phrase. It
# always comes last, so nested phrases read left to right ("the founder of the publisher of X").
_PHRASE = {
    "born_in": "the birthplace of {x}",
    "mentor": "the mentor of {x}",
    "employer": "the employer of {x}",
    "founder": "the founder of {x}",
    "headquarters": "the city that is home to the headquarters of {x}",
    "author": "the author of {x}",
    "publisher": "the publisher of {x}",
    "venue": "the host city of {x}",
    "organiser": "the organiser of {x}",
    "region": "the region containing {x}",
    "mayor": "the mayor of {x}",
    "capital": "the capital of {x}",
}
# The question when the chain ends on a relation's object (the answer is its name).
_ASK_ENTITY = {
    "born_in": "In which city was {x} born?",
    "mentor": "Who was the mentor of {x}?",
    "employer": "Which organisation did {x} work for?",
    "founder": "Who founded {x}?",
    "headquarters": "In which city does {x} have its headquarters?",
    "author": "Who wrote {x}?",
    "publisher": "Which organisation published {x}?",
    "venue": "Which city hosts {x}?",
    "organiser": "Which organisation organises {x}?",
    "region": "In which region does {x} lie?",
    "mayor": "Who is the mayor of {x}?",
    "capital": "What is the capital of {x}?",
}
# The question when the chain ends on the last entity's attribute.
_ASK_ATTRIBUTE = {
    "person": "In what year was {x} born?",
    "organisation": "In what year was {x} founded?",
    "work": "In what year was {x} published?",
    "event": "In what year was {x} first held?",
    "city": "What is the population of {x}?",
    "region": "What is the official language of {x}?",
}

INSTRUCTION = (
    "Answer the question by searching the document collection: {question}\n"
    "The search tool returns ranked documents with a snippet each; the open tool reads a document page by page. "
    "Give a short final answer (a name, a year or a number) as <answer>...</answer>."
)


def _mention(entity: Entity) -> str:
    if entity.kind == "work":
        return f'"{entity.name}"'
    if entity.kind == "event":
        return f"the {entity.name}"
    return entity.name


def _sample_chain(world: World, rng: random.Random, hops: int) -> tuple[list[Entity], list[str], bool] | None:
    """A random chain for `hops` hops: (entities, relations, ends on an attribute), or None on a dead end."""
    ends_on_attribute = rng.random() < 0.5
    n_relations = hops - 1 if ends_on_attribute else hops
    if n_relations == 0 and not ends_on_attribute:
        return None
    chain = [world.entities[rng.randrange(len(world.entities))]]
    relations: list[str] = []
    seen = {chain[0].index}
    for _ in range(n_relations):
        options = [(r, t) for r, t in chain[-1].rels.items() if t not in seen]
        if not options:
            return None
        rel, target = options[rng.randrange(len(options))]
        relations.append(rel)
        chain.append(world.entities[target])
        seen.add(target)
    return chain, relations, ends_on_attribute


def _chain_task(chain: list[Entity], relations: list[str], on_attribute: bool) -> dict:
    """Question text, answers and the oracle's path for a chain."""
    phrase = _mention(chain[0])
    last = relations if on_attribute else relations[:-1]
    for rel in last:
        phrase = _PHRASE[rel].format(x=phrase)
    if on_attribute:
        end = chain[-1]
        attr = ATTRIBUTES[end.kind]
        question = _ASK_ATTRIBUTE[end.kind].format(x=phrase)
        answer = end.attrs[attr.name]
        readers = chain  # every entity's document is read, the last one for its attribute
        keywords = [RELATIONS[r].keyword for r in relations] + [attr.keyword]
    else:
        question = _ASK_ENTITY[relations[-1]].format(x=phrase)
        answer = chain[-1].name
        readers = chain[:-1]
        keywords = [RELATIONS[r].keyword for r in relations]
    reveals = [e.name for e in chain[1 : len(readers)]] + [answer]
    steps = [
        {"doc_id": e.doc_id, "title": e.name, "query": f"{e.name} {kw}", "reveals": r}
        for e, kw, r in zip(readers, keywords, reveals, strict=True)
    ]
    return {"question": question[0].upper() + question[1:], "answer": answer, "steps": steps}


def generated_tasks(world: World, split: str, hops: Sequence[int], counts: dict[str, int], seed: int) -> list[Task]:
    """The tasks of `split` (`counts[split]` of them), spread evenly over the hop counts in `hops`.

    The test split is drawn first, from its own seed; train questions never repeat a test
    question, and the test set does not depend on the number of train tasks.
    """
    tasks: list[Task] = []
    for h_i, h in enumerate(hops):

        def share(split: str, h_i: int = h_i) -> int:
            return counts[split] // len(hops) + (1 if h_i < counts[split] % len(hops) else 0)

        exclude: set[str] = set()
        if split == "train":
            exclude = {t.metadata["question"] for t in _per_hop(world, "test", h, share("test"), seed, set())}
        tasks.extend(_per_hop(world, split, h, share(split), seed, exclude))
    return tasks


def _per_hop(world: World, split: str, hops: int, count: int, seed: int, exclude: set[str]) -> list[Task]:
    rng = random.Random(f"agentgym-search-tasks-{seed}-{split}-{hops}")
    out: list[Task] = []
    seen = set(exclude)
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 200 * count + 1000:
            raise ValueError(
                f"could not draw {count} distinct {hops}-hop questions from this world; "
                "use a larger world (world_scale) or fewer tasks"
            )
        sampled = _sample_chain(world, rng, hops)
        if sampled is None:
            continue
        spec = _chain_task(*sampled)
        # A question that contains its answer ("Which city hosts the Varnholt Fair?" ->
        # Varnholt) could be answered without searching.
        if spec["question"] in seen or normalize_answer(spec["answer"]) in normalize_answer(spec["question"]):
            continue
        seen.add(spec["question"])
        i = len(out)
        out.append(
            Task(
                id=f"search-{split}-{hops}hop-{i:04d}",
                instruction=INSTRUCTION.format(question=spec["question"]),
                split=split,
                min_turns=hops + 1,
                difficulty=float(hops),
                metadata={
                    "question": spec["question"],
                    "answers": [spec["answer"]],
                    "hops": hops,
                    "supporting_doc_ids": [s["doc_id"] for s in spec["steps"]],
                    "steps": spec["steps"],
                },
            )
        )
    return out


def question_tasks(
    questions: Sequence[Question], split: str, test_fraction: float, seed: int, hops: Sequence[int] | None
) -> list[Task]:
    """Tasks from loaded questions: a seeded shuffle, the first `test_fraction` of it is the test split.

    `hops`, if given, keeps only questions whose hop count (the file's `hops`, or the
    number of supporting titles) is in it. `min_turns` is hops + 1 (one search a
    supporting document, then the answer), or 2 when the hop count is unknown.
    """
    if hops is not None:
        questions = [q for q in questions if q.hops in set(hops)]
    order = list(range(len(questions)))
    random.Random(f"agentgym-search-questions-{seed}").shuffle(order)
    n_test = round(len(order) * test_fraction)
    chosen = order[:n_test] if split == "test" else order[n_test:]
    out = []
    for i in sorted(chosen):
        q = questions[i]
        out.append(
            Task(
                id=q.id,
                instruction=INSTRUCTION.format(question=q.question),
                split=split,
                min_turns=(q.hops or 1) + 1,
                difficulty=q.level or (float(q.hops) if q.hops else "medium"),
                metadata={
                    "question": q.question,
                    "answers": list(q.answers),
                    "hops": q.hops,
                    "supporting_titles": list(q.supporting_titles),
                },
            )
        )
    return out


def oracle_actions(task: Task, k: int = 5) -> list[str]:
    """The scripted oracle's messages for a generated task: one search per hop, then the answer.

    Each search is the chain entity's name plus the relation's keyword; its top results
    show the next entity's name (or the answer) in the entity's snippet.
    """
    steps = task.metadata.get("steps")
    if not steps:
        raise ValueError(f"task {task.id!r} has no oracle path (only generated tasks do)")
    calls = [
        "<tool_call>" + json.dumps({"name": "search", "arguments": {"query": s["query"], "k": k}}) + "</tool_call>"
        for s in steps
    ]
    return [*calls, f"<answer>{task.metadata['answers'][0]}</answer>"]
