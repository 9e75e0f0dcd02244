import json
import os
import subprocess
import sys

import pytest
from conftest import FIXTURES

from longdoc.errors import LongdocError
from longdoc.evaluation.datasets import load_beir, load_quoref, multi_aspect
from longdoc.evaluation.retrieval_eval import evaluate_retrieval, load_dataset


def test_quoref_subset_loads_passages_questions_and_answers():
    data = load_quoref(FIXTURES / "quoref_subset.json")
    assert len(data.corpus) == 12 and len(data.queries) == 27
    assert all(len(r) == 1 and next(iter(r)) in data.corpus for r in data.qrels.values())
    assert data.answers["q0"] == ["Catherine"]
    assert not any(d["text"].startswith("Passage:") for d in data.corpus.values())
    assert len(data.limited(5).queries) == 5 and len(data.limited(5).corpus) == 12


def test_beir_folder_loads_graded_qrels():
    data = load_beir(FIXTURES / "beir_mini")
    assert set(data.corpus) == {"d1", "d2", "d3", "d4"} and data.corpus["d2"]["title"] == "Fresnel lens"
    assert set(data.queries) == {"q1", "q2", "q3"}  # q4 has no judgements
    assert data.qrels["q2"] == {"d2": 2, "d1": 1}


def test_bad_dataset_inputs_are_named(tmp_path):
    with pytest.raises(LongdocError, match="not a BEIR dataset"):
        load_beir(tmp_path)
    with pytest.raises(LongdocError, match="unknown dataset"):
        load_dataset("squad-but-not-yet")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LongdocError, match="cannot read Quoref"):
        load_quoref(bad)


def test_multi_aspect_queries_need_different_documents():
    base = load_quoref(FIXTURES / "quoref_subset.json")
    data = multi_aspect(base, 10, aspects=2, seed=3)
    assert len(data.queries) == 10
    for qid, rel in data.qrels.items():
        assert len(rel) == 2
        assert data.queries[qid].count("?") == 2
    assert multi_aspect(base, 10, aspects=2, seed=3).queries == data.queries  # seeded


@pytest.mark.slow
def test_evaluate_retrieval_on_the_quoref_subset(tmp_path, embedder):
    data = load_quoref(FIXTURES / "quoref_subset.json")
    result = evaluate_retrieval(data, tmp_path, ["dense", "multihead", "bm25", "hybrid"], [1, 5], progress=False,
                                embedder=embedder)
    assert result["documents"] == 12 and result["queries"] == 27
    for mode, m in result["modes"].items():
        assert 0 <= m["recall@1"] <= m["recall@5"] <= 1
        assert m["recall@1"] <= m["mrr@10"] <= 1
        assert m["answer_in_context@5"] >= 0
    # 12 passages: every mode should find most questions' passage in its top 5.
    assert result["modes"]["hybrid"]["recall@5"] >= 0.8
    # The second run reuses the index: nothing is embedded again.
    again = evaluate_retrieval(data, tmp_path, ["bm25"], [1], progress=False, embedder=embedder)
    assert again["chunks_embedded_now"] == 0 and again["modes"]["bm25"]["recall@1"] == result["modes"]["bm25"]["recall@1"]


@pytest.mark.slow
def test_eval_retrieval_cli_writes_a_json_record(tmp_path):
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "longdoc", "eval", "retrieval", "--dataset",
                           f"beir:{FIXTURES / 'beir_mini'}", "--modes", "dense,bm25,hybrid", "-k", "1,3",
                           "--workdir", str(tmp_path / "work"), "--out", str(out)],
                          capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["git_commit"] and record["versions"]["torch"] and record["command"].startswith("longdoc eval retrieval")
    assert set(record["modes"]) == {"dense", "bm25", "hybrid"}
    assert record["modes"]["hybrid"]["recall@3"] == pytest.approx(1.0)
    assert "recall@1" in proc.stdout


def test_datasets_share_an_index_only_when_they_share_a_corpus():
    subset = load_dataset(f"quoref:{FIXTURES / 'quoref_subset.json'}")
    assert subset.corpus_name == "quoref-quoref_subset"  # never the full Quoref index, which --prune would gut
    assert multi_aspect(subset, 3).corpus_name == subset.corpus_name
    assert subset.limited(4).corpus_name == subset.corpus_name
