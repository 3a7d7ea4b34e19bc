"""Real data for SearchEnv: JSONL corpus and question loaders, and the env built on them."""

from __future__ import annotations

import json

import gymnasium
import pytest
from agentgym.envs.search.data import load_corpus, load_questions
from gymnasium.utils.env_checker import check_env

import agentgym  # noqa: F401  (registers the envs)

CORPUS = [
    {
        "id": "1",
        "title": "Marrow Press",
        "text": "Marrow Press is a printing house. It was founded by Ida Kell in 1887.",
    },
    {"id": "2", "title": "Ida Kell", "text": "Ida Kell was a printer. She was born in the town of Ostbury."},
    {"id": "3", "title": "Ostbury", "text": "Ostbury is a port town on the river Lune. Its mayor is Tom Farrow."},
    {"id": "4", "title": "The Amber Tide", "text": "The Amber Tide is a novel published by Marrow Press in 1901."},
    {"id": "5", "title": "Lune", "text": "The Lune is a river that flows past Ostbury into the sea."},
    {"id": "6", "title": "Kell Bridge", "text": "Kell Bridge crosses the Lune; it is named after the Kell family."},
]
QUESTIONS = [
    {
        "_id": "h1",
        "question": "Who founded the publisher of The Amber Tide?",
        "answer": "Ida Kell",
        "supporting_facts": [["The Amber Tide", 0], ["Marrow Press", 1]],
        "level": "medium",
    },
    {
        "id": "h2",
        "question": "In which town was the founder of Marrow Press born?",
        "golden_answers": ["Ostbury"],
        "supporting_titles": ["Marrow Press", "Ida Kell"],
    },
    {"question": "Which river flows past Ostbury?", "answer": ["Lune", "the river Lune"]},
    {"question": "Who is the mayor of Ostbury?", "answers": ["Tom Farrow"], "supporting_titles": ["Ostbury"]},
    {"question": "When was Marrow Press founded?", "answer": 1887, "hops": 1},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    return write_jsonl(tmp_path / "corpus.jsonl", CORPUS), write_jsonl(tmp_path / "questions.jsonl", QUESTIONS)


@pytest.fixture
def make_env(files, tmp_path):
    corpus, questions = files

    def make(**kwargs):
        return gymnasium.make(
            "agentgym/Search-v0",
            corpus=str(corpus),
            questions=str(questions),
            cache_dir=str(tmp_path / "cache"),
            **kwargs,
        ).unwrapped

    return make


def call(name: str, **arguments) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def test_load_corpus_reads_ids_titles_and_texts(files):
    corpus = load_corpus(files[0])
    assert len(corpus) == 6
    assert corpus.get("2").title == "Ida Kell"
    assert corpus.get("2").text.startswith("Ida Kell was a printer.")


def test_load_corpus_reads_beir_and_pyserini_layouts(tmp_path):
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"_id": "a", "title": "Alpha", "text": "Alpha text."},
            {"id": 7, "contents": '"Beta"\nBeta is the second letter.'},
            {"docid": "c", "text": "A document without a title."},
        ],
    )
    corpus = load_corpus(path)
    assert [(d.id, d.title, d.text) for d in corpus.docs] == [
        ("a", "Alpha", "Alpha text."),
        ("7", "Beta", "Beta is the second letter."),
        ("c", "", "A document without a title."),
    ]


def test_load_questions_reads_hotpotqa_nq_and_flashrag_layouts(files):
    qs = load_questions(files[1])
    assert [q.id for q in qs] == ["h1", "h2", "line3", "line4", "line5"]
    assert qs[0].answers == ("Ida Kell",) and qs[0].supporting_titles == ("The Amber Tide", "Marrow Press")
    assert qs[0].hops == 2 and qs[0].level == "medium"
    assert qs[1].answers == ("Ostbury",) and qs[1].hops == 2
    assert qs[2].answers == ("Lune", "the river Lune") and qs[2].hops is None
    assert qs[4].answers == ("1887",) and qs[4].hops == 1


def test_load_questions_reads_the_hugging_face_supporting_facts_layout(tmp_path):
    row = {"question": "Q?", "answer": "A", "supporting_facts": {"title": ["X", "Y", "X"], "sent_id": [0, 1, 2]}}
    (q,) = load_questions(write_jsonl(tmp_path / "q.jsonl", [row]))
    assert q.supporting_titles == ("X", "Y")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "9", "title": "T", "text": "ok"', "line 3: invalid JSON"),
        ('["not", "an", "object"]', "line 3: expected a JSON object, got list"),
        ('{"id": "9", "title": "T"}', "line 3: missing 'text'"),
        ('{"title": "T", "text": "no id"}', "line 3: missing 'id' or '_id'"),
        ('{"id": "9", "title": "T", "text": ["a", "list"]}', "line 3: 'text' must be a string, got list"),
        ('{"id": "1", "title": "T", "text": "duplicate id"}', "document id '1' appears twice"),
    ],
)
def test_a_malformed_corpus_line_raises_naming_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps(CORPUS[0]) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus\.jsonl") as exc:
        load_corpus(path)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"answer": "A"}, "line 2: missing 'question'"),
        ({"question": "Q?"}, "line 2: missing 'answer', 'answers' or 'golden_answers'"),
        ({"question": "Q?", "answer": []}, "line 2: 'answer' must be a string or a non-empty list"),
        ({"question": "Q?", "answer": {"no": "text"}}, "line 2: 'answer' must be a string or a non-empty list"),
        ({"question": "Q?", "answer": "A", "supporting_facts": "Title"}, "line 2: 'supporting_facts' must be"),
        ({"question": "Q?", "answer": "A", "supporting_titles": [1, 2]}, "line 2: 'supporting_titles' must be"),
        ({"question": "Q?", "answer": "A", "hops": 0}, "line 2: 'hops' must be a positive integer"),
        ({"_id": "h1", "question": "Q?", "answer": "A"}, "line 2: question id 'h1' already used on line 1"),
        ({"question": "   ", "answer": "A"}, "line 2: 'question' is empty"),
    ],
)
def test_a_malformed_question_line_raises_naming_the_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "questions.jsonl", [QUESTIONS[0], row])
    with pytest.raises(ValueError, match=r"questions\.jsonl") as exc:
        load_questions(path)
    assert message in str(exc.value)


def test_a_json_array_file_gets_a_hint_to_convert_it(tmp_path):
    path = tmp_path / "hotpot_dev.json"
    path.write_text(json.dumps(QUESTIONS, indent=1), encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1: invalid JSON .* looks like a JSON array"):
        load_questions(path)


def test_missing_files_and_half_configured_data_are_rejected(files, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl"):
        load_corpus(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="pass both corpus= and questions="):
        gymnasium.make("agentgym/Search-v0", corpus=str(files[0]))
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        gymnasium.make("agentgym/Search-v0", corpus=str(tmp_path / "missing.jsonl"), questions=str(files[1]))


def test_real_data_env_passes_check_env(make_env):
    check_env(make_env())


def test_real_data_splits_are_a_seeded_partition_of_the_questions(make_env):
    env = make_env(test_fraction=0.4)
    train, test = env.tasks("train"), env.tasks("test")
    assert len(test) == 2 and len(train) == 3
    assert sorted(t.id for t in train + test) == ["h1", "h2", "line3", "line4", "line5"]
    again = make_env(test_fraction=0.4)
    assert [t.id for t in again.tasks("test")] == [t.id for t in test]
    assert {t.split for t in test} == {"test"}


def test_a_hops_filter_that_keeps_no_question_is_an_error(make_env):
    with pytest.raises(ValueError, match=r"no question with hops in \[4\]; its hop counts are \[1, 2\]"):
        make_env(hops=4)


def test_real_data_hops_filter_and_min_turns(make_env):
    env = make_env(hops=2, test_fraction=0.0)
    tasks = env.tasks("train")
    assert sorted(t.id for t in tasks) == ["h1", "h2"]
    assert {t.min_turns for t in tasks} == {3}
    assert {t.id: t.difficulty for t in tasks} == {"h1": "medium", "h2": 2.0}


def test_real_data_episode_searches_opens_and_scores(make_env):
    env = make_env(test_fraction=0.0)
    obs, _ = env.reset(options={"task_id": "h1"})
    assert "Who founded the publisher of The Amber Tide?" in obs
    obs, _, _, _, info = env.step(call("search", query="Amber Tide published", k=2))
    assert "1. [4] The Amber Tide" in obs and "**published**" in obs
    assert info["supporting_docs"] == ["1", "4"] and info["supporting_retrieved"] == ["4"]
    obs, _, _, _, info = env.step(call("open", doc_id="1"))
    assert "founded by Ida Kell" in obs and info["supporting_opened"] == ["1"]
    assert info["supporting_recall"] == 1.0
    _, reward, terminated, _, info = env.step("<answer>Ida Kell.</answer>")
    assert (reward, terminated, info["success"], info["f1"]) == (1.0, True, True, 1.0)


def test_real_data_answers_accept_any_gold_alias_and_report_partial_f1(make_env):
    env = make_env(test_fraction=0.0)
    env.reset(options={"task_id": "line3"})
    _, reward, _, _, info = env.step("<answer>The River Lune</answer>")
    assert reward == 1.0 and info["gold_answers"] == ["Lune", "the river Lune"]
    env.reset(options={"task_id": "h2"})
    _, reward, _, _, info = env.step("<answer>Ostbury harbour</answer>")
    assert reward == 0.0 and info["f1"] == pytest.approx(2 / 3)


def test_supporting_titles_missing_from_the_corpus_are_reported_once(files, tmp_path):
    rows = [{"question": "Q?", "answer": "A", "supporting_titles": ["Marrow Press", "Atlantis"]}]
    questions = write_jsonl(tmp_path / "q.jsonl", rows)
    env = gymnasium.make(
        "agentgym/Search-v0", corpus=str(files[0]), questions=str(questions), test_fraction=0.0, cache_dir=str(tmp_path)
    ).unwrapped
    with pytest.warns(UserWarning, match=r"1 supporting title\(s\) .* \['Atlantis'\]"):
        env.reset(seed=0)
    _, _, _, _, info = env.step(call("search", query="Marrow Press"))
    assert info["supporting_docs"] == ["1"] and info["supporting_recall"] == 0.5
