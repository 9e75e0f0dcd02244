"""QA dataset loaders, each on a small fixture in its format, and the bigbench example formats."""
import json
from pathlib import Path

import pytest

from longdoc.errors import LongdocError
from longdoc.evaluation import qa_datasets as qa
from longdoc.evaluation.registry import load_dataset

QA = Path(__file__).parent / "fixtures" / "qa"


def test_squad_v2_keeps_every_gold_and_marks_unanswerable():
    d = qa.load_squad(QA / "squad_v2.json")
    assert len(d.queries) == 4 and len(d.corpus) == 2
    assert d.answers["sq1"] == ["James Douglass", "Douglass"]
    assert d.answers["sq3"] == []  # unanswerable: abstaining is right
    assert d.qrels["sq1"] == d.qrels["sq3"] != d.qrels["sq4"]
    doc = d.corpus[next(iter(d.qrels["sq2"]))]
    assert doc["title"] == "Lighthouses" and "1882" in doc["text"]


def test_hotpotqa_gold_passages_are_the_supporting_paragraphs():
    d = qa.load_hotpotqa(QA / "hotpotqa.json")
    assert d.answers["hp1"] == ["James Douglass"]
    titles = {d.corpus[doc]["title"] for doc in d.qrels["hp1"]}
    assert titles == {"James Douglass", "Smeaton's Tower"}
    assert len(d.corpus) == 4  # "Fog signal" appears twice with the same text: one document


def test_nq_open_and_flashrag():
    nq = qa.load_nq_open(QA / "nq_open.jsonl")
    assert nq.corpus == {} and nq.answers["nq0"] == ["James Douglass", "Sir James Douglass"]
    fr = qa.load_flashrag(QA / "flashrag" / "test.jsonl")
    assert fr.answers["fr1"] == ["a fog signal", "fog signal"]
    assert fr.corpus["1"] == {"title": "James Douglass", "text": "James Douglass designed the fourth Eddystone tower."}


def test_longbench_contexts_become_documents():
    d = qa.load_longbench(QA / "longbench.jsonl")
    assert d.answers == {"lb1": ["Thomas Eddy"], "lb2": ["thirty hours"]}
    assert len(d.corpus) == 1 and d.qrels["lb1"] == d.qrels["lb2"]


def test_drop_and_mysteries_in_the_bigbench_formats():
    drop = qa.drop_from_examples([
        {"input": "Passage: The Raiders kicked 3 field goals and won. \nQuestion: How many field goals? \nAnswer type: Number ",
         "target": "['3.']"},
        {"input": "Passage: Brown kicked a 40-yard goal.\nQuestion: Who kicked? \nAnswer type: Span ", "target": ["Brown."]}])
    assert drop.queries == {"q0": "How many field goals?", "q1": "Who kicked?"}
    assert drop.answers == {"q0": ["3"], "q1": ["Brown"]}
    mysteries = qa.mysteries_from_examples([{"input": "The vase was broken at noon. Only Leo was home. Who broke it? How do we know?",
                                             "target": "Leo, because he was the only one home.", "comment": "vase"}])
    assert mysteries.queries["q0"] == "Who broke it? How do we know?"
    assert mysteries.corpus[next(iter(mysteries.qrels["q0"]))]["text"] == "The vase was broken at noon. Only Leo was home."


def test_registry_names_and_clear_errors(tmp_path):
    assert len(load_dataset(f"squad:{QA / 'squad_v2.json'}", limit=2).queries) == 2
    assert load_dataset(f"longbench:{QA / 'longbench.jsonl'}").name == "longbench-longbench"
    with pytest.raises(LongdocError, match="no such squad dataset"):
        load_dataset(f"squad:{tmp_path / 'missing.json'}")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": ["a"]}\nnot json\n')
    with pytest.raises(LongdocError, match=r"bad.jsonl:2: not a JSON line"):
        qa.load_nq_open(bad)
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(LongdocError, match="missing field"):
        qa.load_nq_open(bad)
    (tmp_path / "s.json").write_text("[]")
    with pytest.raises(LongdocError, match="not SQuAD JSON"):
        qa.load_squad(tmp_path / "s.json")
    with pytest.raises(LongdocError, match="unknown dataset"):
        load_dataset("trivia")


def _pydocs_rows():
    from longdoc.evaluation.qa_datasets import PYTHON_DOCS_QA

    return [json.loads(line) for line in PYTHON_DOCS_QA.read_text().splitlines()]


def test_python_docs_questions_each_hold_an_answer_in_their_quoted_source():
    rows = _pydocs_rows()
    assert len(rows) >= 20 and len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["source"].endswith(".rst.txt") and r["question"].endswith("?")
        assert any(a.lower() in r["evidence"].lower() for a in r["answers"]), r["id"]


def test_python_docs_qa_loads_over_a_manual_and_names_a_missing_source(tmp_path):
    from longdoc.evaluation.qa_datasets import PYTHON_DOCS_QA, load_python_docs_qa

    rows = _pydocs_rows()
    for r in rows:  # a stand-in manual holding just the quoted passages, plus an unrelated file
        path = tmp_path / "docs" / r["source"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((path.read_text() if path.exists() else "Title\n=====\n\n") + r["evidence"] + "\n\n")
    (tmp_path / "docs" / "about.rst.txt").write_text("About these documents\n")
    ds = load_python_docs_qa(PYTHON_DOCS_QA, tmp_path / "docs")
    assert ds.name == "python-docs-qa" and len(ds.queries) == len(rows) and "about" in ds.corpus
    assert ds.qrels["pydoc-1"] == {"library.functools": 1}
    for r in rows:
        assert list(ds.qrels[r["id"]]) == [r["source"][:-8].replace("/", ".")] and ds.answers[r["id"]] == r["answers"]
    (tmp_path / "docs" / rows[0]["source"]).unlink()
    with pytest.raises(LongdocError, match="is not in"):
        load_python_docs_qa(PYTHON_DOCS_QA, tmp_path / "docs")


def test_python_docs_evidence_is_quoted_from_the_real_manual():
    import re

    from longdoc.models.cache import cache_dir

    root = cache_dir("data", "python-docs")
    if not (root / ".complete").exists():
        pytest.skip("the Python manual is not fetched here (longdoc data pull python-docs)")
    sources = root / "usr/share/doc/python3.11/html/_sources"
    norm = lambda t: re.sub(r"\s+", " ", t)  # noqa: E731
    for r in _pydocs_rows():
        assert norm(r["evidence"]) in norm((sources / r["source"]).read_text()), r["id"]


def test_essay_paraphrase_plants_each_needle_once_and_no_question_shares_a_content_word_with_it(tmp_path):
    """The set's promise: BM25 cannot match a question to its needle by a shared word (nor by a shared
    five-letter stem: "mapped" and "mapmaker")."""
    from longdoc.retrieval.bm25 import query_terms

    for i in range(5):  # stand-in essays: paragraphs of words no needle uses
        (tmp_path / f"essay{i}.txt").write_text("\n\n".join(f"Paragraph {j} of essay {i}." for j in range(8)))
    ds = qa.load_essay_paraphrase(qa.ESSAY_PARAPHRASE, tmp_path)
    assert ds.name == "essay-paraphrase" and len(ds.queries) == 60 and set(ds.corpus) == {f"essay{i}" for i in range(5)}

    def stems(text: str) -> set[str]:
        return {w[:5] for w in query_terms(text) if len(w) > 1}

    for qid, question in ds.queries.items():
        needle = ds.evidence[qid]
        (essay,) = ds.qrels[qid]
        assert sum(doc["text"].count(needle) for doc in ds.corpus.values()) == ds.corpus[essay]["text"].count(needle) == 1
        assert not stems(question) & stems(needle), qid
