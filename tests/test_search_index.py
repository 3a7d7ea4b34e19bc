"""The search machinery: the generated world, the BM25 index and its caches, snippets, pages, scoring."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import pytest
from agentgym.envs.search.corpus import Corpus, Document, paginate
from agentgym.envs.search.documents import render_world
from agentgym.envs.search.index import Analyzer, SearchIndex, clear_memory_cache, default_cache_dir, get_index
from agentgym.envs.search.scoring import best_scores, f1_score, normalize_answer
from agentgym.envs.search.snippets import make_snippet
from agentgym.envs.search.world import ATTRIBUTES, RELATIONS, generate_world

DOCS = [
    Document("a", "Marrow Press", "Marrow Press is a printing house. Marrow Press was founded by Ida Kell in 1887."),
    Document("b", "Ida Kell", "Ida Kell was a printer. Ida Kell was born in Ostbury."),
    Document("c", "Ostbury", "Ostbury is a port town. The mayor of Ostbury is Tom Farrow."),
    Document("d", "Kell Bridge", "Kell Bridge crosses the river. It is named after the Kell family."),
]


@pytest.fixture
def corpus():
    return Corpus(DOCS, name="test")


@pytest.fixture(autouse=True)
def fresh_memory_cache():
    clear_memory_cache()
    yield
    clear_memory_cache()


# --------------------------------------------------------------------------- the world


def test_world_is_deterministic_from_its_seed():
    first, second, other = generate_world(3), generate_world(3), generate_world(4)
    assert [(e.name, e.attrs, e.rels, e.doc_id) for e in first.entities] == [
        (e.name, e.attrs, e.rels, e.doc_id) for e in second.entities
    ]
    assert [e.name for e in first.entities] != [e.name for e in other.entities]


def test_world_has_a_few_thousand_uniquely_named_entities_of_every_kind():
    world = generate_world(0)
    assert 2000 <= len(world.entities) <= 4000
    assert len({e.name for e in world.entities}) == len(world.entities)
    assert all(world.of_kind(kind) for kind in ("region", "city", "person", "organisation", "work", "event"))


def test_world_has_distractor_twins_whose_names_contain_another_entitys():
    world = generate_world(0)
    twins = [e for e in world.entities if e.twin_of is not None]
    assert len(twins) > 100
    for twin in twins:
        original = world.entities[twin.twin_of]
        assert original.name in twin.name and original.kind == twin.kind


def test_relations_are_typed_functions():
    world = generate_world(0)
    for e in world.entities:
        for rel, target in e.rels.items():
            assert RELATIONS[rel].subject == e.kind
            assert RELATIONS[rel].object == world.entities[target].kind
        assert ATTRIBUTES[e.kind].name in e.attrs


def test_every_fact_sentence_names_its_documents_own_entity():
    # What makes hop counts exact: a document never states a fact about another entity.
    world = generate_world(0)
    corpus = render_world(world)
    analyzer = Analyzer()
    keywords = {analyzer.terms(r.keyword)[0] for r in RELATIONS.values()}
    keywords |= {analyzer.terms(a.keyword)[0] for a in ATTRIBUTES.values()}
    for doc in corpus.docs:
        for sentence in re.split(r"(?<=\.)\s+", doc.text):
            if keywords & set(analyzer.terms(sentence)) and doc.title not in sentence:
                pytest.fail(f"{doc.id} ({doc.title}) states a fact about someone else: {sentence!r}")


def test_documents_state_every_outgoing_relation():
    world = generate_world(0)
    corpus = render_world(world)
    for e in world.entities[:300]:
        text = corpus.get(e.doc_id).text
        for target in e.rels.values():
            assert world.entities[target].name in text


# --------------------------------------------------------------------------- the index


def test_analyzer_folds_case_and_accents_stems_and_drops_stop_words():
    assert Analyzer().terms("The FOUNDERS of Zürich were founded") == ["founder", "zurich", "found"]


def test_search_ranks_the_best_matching_document_first(corpus):
    index = SearchIndex.build(corpus)
    hits, matching = index.search(index.query_terms("Ida Kell born"), k=3)
    assert corpus.docs[hits[0].position].id == "b"
    assert matching == 3  # a, b and d mention Kell
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_with_only_unknown_terms_finds_nothing(corpus):
    index = SearchIndex.build(corpus)
    assert index.search(index.query_terms("zyzzyva"), k=5) == ([], 0)


def test_second_get_index_loads_from_disk_instead_of_rebuilding(corpus, tmp_path, monkeypatch):
    first = get_index(corpus, tmp_path)
    assert first.source == "built"
    clear_memory_cache()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the index was rebuilt although it is cached on disk")

    monkeypatch.setattr(SearchIndex, "build", no_rebuild)
    second = get_index(corpus, tmp_path)
    assert second.source == "disk"
    terms = second.query_terms("mayor of Ostbury")
    assert second.search(terms, 2) == first.search(terms, 2)


def test_get_index_in_one_process_returns_the_same_object(corpus, tmp_path):
    assert get_index(corpus, tmp_path) is get_index(corpus, tmp_path)


def test_the_cache_key_changes_with_the_corpus_content(corpus, tmp_path):
    get_index(corpus, tmp_path)
    changed = Corpus([*DOCS[:3], Document("d", "Kell Bridge", "A different text.")])
    assert get_index(changed, tmp_path).source == "built"
    assert len([p for p in tmp_path.iterdir()]) == 2


def test_saving_writes_no_temporary_folders_and_tolerates_a_concurrent_writer(corpus, tmp_path):
    index = SearchIndex.build(corpus)
    index.save(tmp_path / "key")
    index.save(tmp_path / "key")  # a second process finishing the same build later
    assert [p.name for p in tmp_path.iterdir()] == ["key"]
    assert SearchIndex.load(tmp_path / "key").num_docs == len(corpus)


def test_concurrent_processes_share_one_cached_index(tmp_path):
    script = (
        "import sys\n"
        "from agentgym.envs.search.documents import world_corpus\n"
        "from agentgym.envs.search.index import get_index\n"
        "index = get_index(world_corpus(0, 0.2), sys.argv[1])\n"
        "terms = index.query_terms('mayor population')\n"
        "print(index.source, index.search(terms, 3)[0])\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert len({out.split(" ", 1)[1] for out in outputs}) == 1  # same results, whoever built the index
    assert len(list(tmp_path.iterdir())) == 1  # one index, no temporary folder left
    rerun = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    assert rerun.stdout.startswith("disk ")


def test_an_unreadable_cache_is_rebuilt_with_a_warning(corpus, tmp_path):
    get_index(corpus, tmp_path)
    clear_memory_cache()
    (cached,) = tmp_path.iterdir()
    (cached / "params.index.json").write_text("{broken")
    with pytest.warns(UserWarning, match="unreadable"):
        index = get_index(corpus, tmp_path)
    assert index.source == "built"
    clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_index(corpus, tmp_path).source == "disk"


def test_default_cache_dir_follows_agentgym_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "search"
    monkeypatch.delenv("AGENTGYM_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "agentgym", "search")


# --------------------------------------------------------------------------- snippets and pages


def test_snippet_shows_the_sentence_with_the_query_keyword_in_bold(corpus):
    index = SearchIndex.build(corpus)
    terms = set(index.query_terms("Marrow Press founded"))
    snippet = make_snippet(DOCS[0].text, terms, index.term_weight, index.analyzer)
    assert "**founded** by Ida Kell in 1887" in snippet
    assert "**Marrow** **Press**" in snippet


def test_snippet_of_a_long_sentence_is_clipped_around_the_match():
    analyzer = Analyzer()
    text = " ".join(["filler"] * 200) + " the needle is here " + " ".join(["filler"] * 200) + "."
    snippet = make_snippet(text, {"needl"}, lambda t: 1.0, analyzer, max_chars=120)
    assert "**needle**" in snippet
    assert snippet.startswith("...") and snippet.endswith("...")
    assert len(snippet.replace("**", "")) <= 126


def test_pages_respect_the_page_size_and_keep_every_word():
    text = "\n\n".join(" ".join(f"w{p}x{i}." for i in range(30)) for p in range(6))
    pages = paginate(text, 200)
    assert len(pages) > 1 and all(len(p) <= 200 for p in pages)
    assert " ".join(pages).split() == text.split()
    assert paginate("short", 200) == ["short"]


# --------------------------------------------------------------------------- scoring


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [("The Marrow Press.", "marrow press"), ("48,200", "48200"), ("  an Ida   Kell ", "Ida Kell")],
)
def test_normalised_answers_match(prediction, gold):
    assert normalize_answer(prediction) == normalize_answer(gold)


def test_f1_gives_partial_credit_and_best_scores_takes_the_best_gold():
    assert f1_score("Ida Kell", "Ida Kell the Younger") == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert f1_score("Tom", "Ida") == 0.0
    assert best_scores("Lune", ["the river Lune", "Lune"]) == (True, 1.0)
