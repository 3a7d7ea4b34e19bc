"""A fictional world: people, places, organisations, works and events, and how they relate.

Everything is invented from a seed, so no answer can come from a model's memory. Each
relation is a function (an organisation has one founder, a person one birthplace), so a
chain of relations from a named entity has exactly one answer. Some entities have a
*twin*: an entity whose name contains the other's ("Ida Marrow" and "Ida Marrow the
Younger", "Varnholt" and "New Varnholt"), with unrelated facts; they are the distractors a
search agent must tell apart.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from functools import lru_cache

from agentgym.envs.search.names import NameMaker, UniqueNames, cap

__all__ = ["ATTRIBUTES", "KINDS", "RELATIONS", "Attribute", "Entity", "Relation", "World", "generate_world"]

#: Entity kinds, in generation order.
KINDS = ("region", "city", "person", "organisation", "work", "event")


@dataclass(frozen=True)
class Relation:
    """A functional relation from one kind of entity to another, stated only in the subject's document.

    `keyword` is a word every sentence stating the relation contains, so a query made of the
    subject's name and the keyword finds the sentence.
    """

    name: str
    subject: str
    object: str
    keyword: str


@dataclass(frozen=True)
class Attribute:
    """The one attribute of a kind that questions ask for (a year, a number, a language)."""

    name: str
    kind: str
    keyword: str


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation("born_in", "person", "city", "born"),
        Relation("mentor", "person", "person", "mentor"),
        Relation("employer", "person", "organisation", "worked"),
        Relation("founder", "organisation", "person", "founded"),
        Relation("headquarters", "organisation", "city", "headquarters"),
        Relation("author", "work", "person", "written"),
        Relation("publisher", "work", "organisation", "published"),
        Relation("venue", "event", "city", "hosted"),
        Relation("organiser", "event", "organisation", "organised"),
        Relation("region", "city", "region", "region"),
        Relation("mayor", "city", "person", "mayor"),
        Relation("capital", "region", "city", "capital"),
    )
}

#: The attribute questions ask for, by kind.
ATTRIBUTES: dict[str, Attribute] = {
    a.kind: a
    for a in (
        Attribute("birth_year", "person", "born"),
        Attribute("founded", "organisation", "founded"),
        Attribute("year", "work", "published"),
        Attribute("year", "event", "held"),
        Attribute("population", "city", "population"),
        Attribute("language", "region", "language"),
    )
}


@dataclass(slots=True)
class Entity:
    """One thing in the world: its kind, unique name, attributes and outgoing relations.

    Attributes:
        index: position in `World.entities`.
        kind: one of `KINDS`.
        name: unique across the world; the title of its document.
        attrs: strings (years, numbers, descriptors) shown in the entity's document.
        rels: relation name -> index of the related entity.
        twin_of: index of the entity whose name this one's contains, for twins.
        doc_id: id of the entity's document.
    """

    index: int
    kind: str
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    rels: dict[str, int] = field(default_factory=dict)
    twin_of: int | None = None
    doc_id: str = ""


@dataclass
class World:
    """All entities of a generated world."""

    seed: int
    scale: float
    entities: list[Entity]

    def __post_init__(self) -> None:
        self._by_kind: dict[str, list[Entity]] = {k: [] for k in KINDS}
        for e in self.entities:
            self._by_kind[e.kind].append(e)

    def of_kind(self, kind: str) -> list[Entity]:
        """The entities of one kind, in index order."""
        return self._by_kind[kind]


_ORG_KINDS = (
    # (name suffix, descriptor, publishes works)
    ("Press", "a printing press", True),
    ("Publishing House", "a publishing house", True),
    ("Almanac Society", "a learned society", True),
    ("Academy", "an academy", True),
    ("Institute", "a research institute", True),
    ("Library Company", "a subscription library", True),
    ("Printing Works", "a printing firm", True),
    ("Review", "a literary review", True),
    ("Trading Company", "a trading company", False),
    ("Shipping Line", "a shipping company", False),
    ("Ironworks", "an ironworks", False),
    ("Observatory", "an observatory", False),
    ("Conservatory", "a music conservatory", False),
    ("Bank", "a bank", False),
    ("Glassworks", "a glassworks", False),
    ("Clockmakers' Guild", "a craft guild", False),
    ("Botanical Society", "a botanical society", False),
    ("Theatre Company", "a theatre company", False),
)
_PROFESSIONS = (  # noqa: SIM905
    "cartographer clockmaker botanist engraver astronomer composer glassblower shipwright archivist "
    "printer surveyor physician translator poet architect chemist weaver lexicographer bookbinder "
    "instrument-maker"
).split()
_WORK_FORMS = ["novel", "treatise", "atlas", "almanac", "chronicle", "play", "memoir", "herbal", "songbook", "epic"]
_ADJECTIVES = (  # noqa: SIM905
    "silent amber hollow bright crooked distant gilded quiet restless scarlet shrouded slow winter "
    "northern salt iron glass paper copper last lost patient drowned burning velvet pale bitter "
    "wandering hidden"
).split()
_NOUNS = (  # noqa: SIM905
    "orchard harbour lantern garden tide archive mirror compass bell river lighthouse meadow clock "
    "ledger orchid tower voyage staircase atlas feather cartographer winter furnace map letter mill "
    "kingdom season inheritance lamp"
).split()
_EVENT_TOPICS = (  # noqa: SIM905
    "Lantern Clockmakers Salt Glass Harvest Chess Astronomy Printers Kite Rowing Cartography Orchard "
    "Bell Cheese Violin Weaving Tide Poetry Lace Ferry"
).split()
_EVENT_KINDS = ["Festival", "Congress", "Fair", "Regatta", "Exhibition", "Symposium", "Tournament", "Gathering"]
_TWIN_PATTERNS = {
    "person": ("{} the Younger", "{} the Elder"),
    "organisation": ("New {}", "{} Trust", "Royal {}"),
    "work": ("{} Revisited", "{}, Part Two"),
    "event": ("Little {}", "{} Revival"),
    "city": ("New {}", "Upper {}", "{} Cross"),
}

#: Entities of each kind at scale 1.0 (about 2,400 documents with twins).
BASE_COUNTS = {"region": 12, "city": 150, "person": 1000, "organisation": 250, "work": 600, "event": 200}


def generate_world(seed: int = 0, scale: float = 1.0, twin_rate: float = 0.1) -> World:
    """Generate a world; the same arguments always give the same world.

    Args:
        seed: seed of the generator.
        scale: multiplies the number of entities of each kind (1.0: about 2,400 documents).
        twin_rate: fraction of people, places, organisations, works and events that get a twin.

    Example:
        >>> world = generate_world(seed=0)
        >>> person = world.of_kind("person")[0]
        >>> world.entities[person.rels["born_in"]].kind
        'city'
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    rng = random.Random(f"agentgym-search-world-{seed}")
    names = UniqueNames()
    counts = {k: max(2, round(n * scale)) for k, n in BASE_COUNTS.items()}
    counts["region"] = max(4, round(BASE_COUNTS["region"] * scale**0.5))
    entities: list[Entity] = []

    def add(kind: str, name: str, **attrs: str) -> Entity:
        e = Entity(len(entities), kind, name, dict(attrs))
        entities.append(e)
        return e

    make = NameMaker(rng, names, counts["person"], counts["region"])
    surnames = make.surnames
    regions = [add("region", make.region(), language=lang) for lang in make.languages]
    cities = [add("city", make.city()) for _ in range(counts["city"])]
    people = [add("person", make.person()) for _ in range(counts["person"])]
    orgs = []
    for _ in range(counts["organisation"]):
        suffix, descriptor, publishes = rng.choice(_ORG_KINDS)

        def org_name(s: str = suffix) -> str:
            return f"{rng.choice(surnames) if rng.random() < 0.6 else rng.choice(cities).name} {s}"

        org = add("organisation", names.unique(org_name), descriptor=descriptor)
        org.attrs["publishes"] = "yes" if publishes else ""
        orgs.append(org)

    def title() -> str:
        a, n = cap(rng.choice(_ADJECTIVES)), cap(rng.choice(_NOUNS))
        form = rng.random()
        if form < 0.5:
            return f"The {a} {n}"
        if form < 0.75:
            return f"{a} {n}"
        return f"The {n} of {rng.choice(cities).name}"

    def event_name() -> str:
        place = rng.choice(cities).name if rng.random() < 0.7 else rng.choice(surnames)
        return f"{place} {rng.choice(_EVENT_TOPICS)} {rng.choice(_EVENT_KINDS)}"

    works = [add("work", names.unique(title)) for _ in range(counts["work"])]
    events = [add("event", names.unique(event_name)) for _ in range(counts["event"])]

    # Twins: same kind, a name containing the original's, independent facts.
    by_kind = {"person": people, "organisation": orgs, "work": works, "event": events, "city": cities}
    for kind, group in by_kind.items():
        for original in rng.sample(group, round(len(group) * twin_rate)):
            twin_name = rng.choice(_TWIN_PATTERNS[kind]).format(original.name)
            if twin_name in names.used:
                continue
            names.used.add(twin_name)
            # an organisation's kind is part of its name ("... Press"), so the twin shares it
            twin = add(kind, twin_name, **(original.attrs if kind == "organisation" else {}))
            twin.twin_of = original.index
            group.append(twin)
    # Attributes are drawn after the twins exist, so a twin's facts are its own.
    for e in people:
        e.attrs["birth_year"] = str(rng.randint(1700, 1960))
        e.attrs["profession"] = rng.choice(_PROFESSIONS)
    for e in cities:
        e.attrs["population"] = f"{round(10 ** rng.uniform(3.1, 6.3), -2):,.0f}"
    for e in works:
        e.attrs["form"] = rng.choice(_WORK_FORMS)
    for e in events:
        e.attrs["every"] = str(rng.choice((1, 1, 2, 3, 4, 5)))

    _relate(rng, regions, cities, people, orgs, works, events)
    # Document ids follow a shuffled order, so an id says nothing about the entity's kind.
    order = list(range(len(entities)))
    rng.shuffle(order)
    width = max(5, len(str(len(entities))))
    for position, i in enumerate(order):
        entities[i].doc_id = f"d{position:0{width}d}"
    return World(seed, scale, entities)


def _year_between(rng: random.Random, low: int, high: int) -> int:
    return rng.randint(low, max(low, high))


def _relate(
    rng: random.Random,
    regions: list[Entity],
    cities: list[Entity],
    people: list[Entity],
    orgs: list[Entity],
    works: list[Entity],
    events: list[Entity],
) -> None:
    """Draw every relation, keeping dates plausible (mentors are older, works postdate authors)."""
    for city in cities:
        city.rels["region"] = rng.choice(regions).index
    cities_of = {r.index: [c for c in cities if c.rels["region"] == r.index] for r in regions}
    for region in regions:
        region.rels["capital"] = rng.choice(cities_of[region.index] or cities).index
    mayors = rng.sample(people, min(len(cities), len(people)))
    for city, mayor in zip(cities, mayors, strict=False):
        city.rels["mayor"] = mayor.index

    by_birth = sorted(people, key=lambda p: (int(p.attrs["birth_year"]), p.index))
    births = [int(p.attrs["birth_year"]) for p in by_birth]
    for person in people:
        person.rels["born_in"] = rng.choice(cities).index
        person.rels["employer"] = rng.choice(orgs).index
        older = bisect.bisect_right(births, int(person.attrs["birth_year"]) - 12)
        if older:
            person.rels["mentor"] = by_birth[rng.randrange(older)].index

    for org in orgs:
        founder = rng.choice(people)
        org.rels["founder"] = founder.index
        org.rels["headquarters"] = rng.choice(cities).index
        born = int(founder.attrs["birth_year"])
        org.attrs["founded"] = str(_year_between(rng, born + 22, born + 60))
    publishers = [o for o in orgs if o.attrs["publishes"]] or orgs
    for work in works:
        author = rng.choice(people)
        work.rels["author"] = author.index
        work.rels["publisher"] = rng.choice(publishers).index
        born = int(author.attrs["birth_year"])
        work.attrs["year"] = str(min(2020, _year_between(rng, born + 20, born + 75)))
    for event in events:
        organiser = rng.choice(orgs)
        event.rels["organiser"] = organiser.index
        event.rels["venue"] = rng.choice(cities).index
        founded = int(organiser.attrs["founded"])
        event.attrs["year"] = str(min(2020, _year_between(rng, founded, founded + 80)))


@lru_cache(maxsize=4)
def cached_world(seed: int = 0, scale: float = 1.0) -> World:
    """`generate_world(seed, scale)`, memoised: the envs of a process share one world."""
    return generate_world(seed, scale)
