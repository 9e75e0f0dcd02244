import pytest
from conftest import FIXTURES

from longdoc.errors import LongdocError
from longdoc.evaluation.datasets import load_beir, load_quoref, multi_aspect
from longdoc.evaluation.registry import load_dataset


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


def test_datasets_share_an_index_only_when_they_share_a_corpus():
    subset = load_dataset(f"quoref:{FIXTURES / 'quoref_subset.json'}")
    assert subset.corpus_name == "quoref-quoref_subset"  # never the full Quoref index, which --prune would gut
    assert multi_aspect(subset, 3).corpus_name == subset.corpus_name
    assert subset.limited(4).corpus_name == subset.corpus_name
