"""Writing the generated world as documents, one per entity.

A document states its entity's attributes and *outgoing* relations only, each fact in a
sentence that names the entity and contains the relation's keyword ("Dempsk Press was
founded in 1887 by Ida Marrow."). No document states a fact about another entity, so a
chain of k relations needs k documents: no search can skip a hop. Filler sentences (which
never contain a keyword) make documents long enough to page, and mention other entities by
name, as real documents do, so a name alone does not find the right document.
"""

from __future__ import annotations

import random
from functools import lru_cache

from agentgym.envs.search.corpus import Corpus, Document
from agentgym.envs.search.world import Entity, World, cached_world

__all__ = ["render_document", "render_world", "world_corpus"]

# One list of paraphrases per fact; every paraphrase contains the fact's keyword (world.py).
_FACTS: dict[str, tuple[str, ...]] = {
    "born_in": (
        "{s} was born in {o} in {birth_year}.",
        "{s} was born in {birth_year} in the city of {o}.",
        "Parish records show that {s} was born in {o} in {birth_year}.",
    ),
    "mentor": (
        "{s} trained under the mentor {o}.",
        "{o} served as the mentor of {s}.",
        "As an apprentice, {s} had {o} as a mentor.",
    ),
    "employer": (
        "{s} worked for {o} for many years.",
        "For most of a long career, {s} worked for {o}.",
        "{s} later worked for {o}.",
    ),
    "founder": (
        "{s} was founded in {founded} by {o}.",
        "{o} founded {s} in {founded}.",
        "In {founded}, {s} was founded by {o}.",
    ),
    "headquarters": (
        "{s} has its headquarters in {o}.",
        "The headquarters of {s} are in {o}.",
        "{s} keeps its headquarters in the city of {o}.",
    ),
    "author": (
        "{s} was written by {o}.",
        "The {form} {s} was written by {o}.",
        "{s} is {a_form} written by {o}.",
    ),
    "publisher": (
        "{s} was published by {o} in {year}.",
        "{s} was first published in {year} by {o}.",
        "In {year}, {s} was published by {o}.",
    ),
    "year": ("{s} was first held in {year}.", "The first {s} was held in {year}."),
    "venue": (
        "{s} is hosted by the city of {o}.",
        "The city of {o} has hosted {s} since its beginning.",
        "{s} has always been hosted in {o}.",
    ),
    "organiser": (
        "{s} is organised by {o}.",
        "{o} has organised {s} from the start.",
        "Since the beginning, {s} has been organised by {o}.",
    ),
    "region": (
        "{s} lies in the region of {o}.",
        "{s} is a city in the region of {o}.",
        "The city of {s} is part of the region of {o}.",
    ),
    "mayor": ("The mayor of {s} is {o}.", "{o} serves as the mayor of {s}.", "{s} is governed by its mayor, {o}."),
    "population": ("{s} has a population of {population}.", "The population of {s} is {population}."),
    "capital": ("The capital of {s} is {o}.", "{o} is the capital of {s}."),
    "language": ("The official language of {s} is {language}.", "{language} is the official language of {s}."),
}

_INTRO = {
    "person": "{s} was {a_profession}.",
    "organisation": "{s} is {descriptor}.",
    "work": "{s} is {a_form}.",
    "event": "{s} is a gathering that takes place {every}.",
    "city": "{s} is a city.",
    "region": "{s} is a region.",
}

# Filler never contains a keyword; {p}, {c}, {g}, {w}, {r} name random other entities.
_FILLER = {
    "person": (
        "Contemporaries described {s} as {t1} and {t2}.",
        "{s} corresponded for years with {p}.",
        "{s} kept detailed notebooks on {topic}.",
        "Late in life, {s} took up the study of {topic}.",
        "{s} travelled widely and spent a winter in {c}.",
        "Several letters by {s} survive in a private archive.",
        "A portrait of {s} by {p} is known from a later copy.",
        "{s} was remembered by students as {t1} but fair.",
        "{s} often quarrelled with {p} about {topic}.",
        "An essay by {s} on {topic} circulated widely.",
        "{s} spent several years in {c} studying {topic}.",
        "Friends of {s} included {p} and {p2}.",
        "{s} left an unfinished manuscript on {topic}.",
        "A street in {c} is named after {s}.",
    ),
    "organisation": (
        "{s} employed several dozen people at its peak.",
        "In its early years {s} struggled with debts.",
        "{s} opened a branch office in {c}.",
        "{s} once shared premises with {g}.",
        "The archives of {s} were catalogued by {p}.",
        "{s} became known for its {t1} approach to {topic}.",
        "For a time {s} sponsored lectures on {topic}.",
        "{s} was admired by {p} for its {t1} staff.",
        "A fire in its first decade destroyed the records of {s}.",
        "{s} still issues a small annual report on {topic}.",
        "A long dispute with {g} nearly ruined {s}.",
    ),
    "work": (
        "Critics have called {s} {t1} and {t2}.",
        "{s} has been translated into several tongues.",
        "A dramatised version of {s} toured {c}.",
        "{s} was reissued with engravings by {p}.",
        "A later edition of {s} added a preface by {p}.",
        "Much of {s} is set in {c}.",
        "{s} is often compared with {w}.",
        "{s} deals at length with {topic}.",
        "The first edition of {s} is now rare.",
        "Early readers thought {s} {t1}, and it sold slowly at first.",
    ),
    "event": (
        "Visitors to {s} come from as far as {c}.",
        "A prize at {s} is named after {p}.",
        "{s} is known for its displays on {topic}.",
        "Attendance at {s} has grown steadily.",
        "Tickets for {s} are sold out months ahead.",
        "{s} was once moved for a season to {c}.",
        "Each edition of {s} closes with a procession.",
        "In one famous year {s} was cut short by storms.",
        "{s} has been compared with {e}.",
    ),
    "city": (
        "{s} is known for its {street} streets.",
        "Many visitors to {s} arrive by ferry from {c}.",
        "The cathedral of {s} took two centuries to complete.",
        "{s} holds an annual market in autumn.",
        "A river runs through {s}.",
        "{s} has an old market square.",
        "A railway connects {s} with {c}.",
        "{s} is famous for {topic}.",
        "The old quarter of {s} was rebuilt after a fire.",
    ),
    "region": (
        "{s} borders {r}.",
        "The landscape of {s} is mostly {land}.",
        "Much of the trade of {s} passes through {c}.",
        "{s} is known for {topic}.",
        "Winters in {s} are long.",
    ),
}
_TRAITS = (  # noqa: SIM905
    "meticulous generous stubborn patient quiet restless exacting witty cautious ambitious eccentric "
    "tireless gentle severe curious"
).split()
_STREETS = ["narrow", "cobbled", "steep", "winding", "broad", "quiet", "crooked"]
_LANDS = ("rolling hills", "dense forest", "salt marsh", "high moorland", "river valleys", "rocky coast")
_TOPICS = (  # noqa: SIM905
    "tides,lenses,river trade,bell casting,old maps,star charts,dyes,orchards,weather,ciphers,"
    "shipbuilding,folk songs,mineral springs,canal building,paper making,clock escapements"
).split(",")


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def render_document(world: World, entity: Entity) -> Document:
    """The document of one entity; deterministic for a given world."""
    rng = random.Random(f"{world.seed}-{entity.index}")
    ents = world.entities
    values = {"s": entity.name, **entity.attrs}
    for key in ("profession", "form"):
        if key in values:
            values[f"a_{key}"] = _a(values[key])
    if "every" in values:
        values["every"] = "every year" if values["every"] == "1" else f"every {values['every']} years"
    facts = []
    for rel, target in entity.rels.items():
        facts.append(rng.choice(_FACTS[rel]).format(o=ents[target].name, **values))
    if entity.kind in ("event", "city", "region"):
        attr = {"event": "year", "city": "population", "region": "language"}[entity.kind]
        facts.append(rng.choice(_FACTS[attr]).format(**values))
    rng.shuffle(facts)

    def other(kind: str) -> str:
        group = world.of_kind(kind)
        pick = group[rng.randrange(len(group))]
        return pick.name if pick.index != entity.index else group[(group.index(pick) + 1) % len(group)].name

    pool = _FILLER[entity.kind]
    fillers = rng.sample(pool, rng.randint(len(pool) // 3, len(pool)))
    fill = []
    for template in fillers:
        t1, t2 = rng.sample(_TRAITS, 2)
        fields = {
            "s": entity.name,
            "t1": t1,
            "t2": t2,
            "topic": rng.choice(_TOPICS),
            "street": rng.choice(_STREETS),
            "land": rng.choice(_LANDS),
        }
        if "{p2}" in template:
            fields["p2"] = other("person")
        for key, kind in (("p", "person"), ("c", "city"), ("g", "organisation"), ("w", "work"), ("e", "event")):
            if "{" + key + "}" in template:
                fields[key] = other(kind)
        if "{r}" in template:
            fields["r"] = other("region")
        fill.append(template.format(**fields))
    # The intro and one fact open the document; the rest is shuffled into paragraphs of
    # 2-4 sentences, so some facts sit on a later page of a long document.
    first = [_INTRO[entity.kind].format(**values), facts[0]]
    rest = facts[1:] + fill
    rng.shuffle(rest)
    paragraphs = [" ".join(first)]
    while rest:
        n = rng.randint(2, 4)
        paragraphs.append(" ".join(rest[:n]))
        rest = rest[n:]
    return Document(entity.doc_id, entity.name, "\n\n".join(paragraphs))


def render_world(world: World) -> Corpus:
    """Every entity's document, in document-id order."""
    docs = sorted((render_document(world, e) for e in world.entities), key=lambda d: d.id)
    return Corpus(docs, name=f"generated world (seed={world.seed}, scale={world.scale})")


@lru_cache(maxsize=4)
def world_corpus(seed: int = 0, scale: float = 1.0) -> Corpus:
    """The corpus of `cached_world(seed, scale)`, memoised per process."""
    return render_world(cached_world(seed, scale))
