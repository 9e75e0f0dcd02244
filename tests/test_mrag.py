"""MRAG's benchmark: the authors' file formats (bz2 JSON for Wikipedia, bz2 tarballs of per-topic files for
legal and chem, their per-query results), read into datasets and scored with the paper's metrics. Small
sets are written here in those formats; the real files are checked when $LONGDOC_MRAG_DIR is set."""
import bz2
import io
import json
import os
import tarfile

import pytest

from longdoc.errors import LongdocError
from longdoc.evaluation import mrag
from longdoc.evaluation.registry import check_dataset_name, load_dataset

ARTICLES = [{"title": f"T{c}{i}", "text": f"text of {c}{i}", "label": f"cat{c}"} for c in "ab" for i in range(3)]
QUERIES = [{"topics": ["Ta0"], "text": "one"}, {"topics": ["Ta1", "Tb2"], "text": "two"},
           {"topics": ["Tb0"], "text": "another one"}]


def _bz2_json(path, obj):
    path.write_bytes(bz2.compress(json.dumps(obj).encode()))


def _tar(path, members: dict[str, object]):
    with tarfile.open(path, "w:bz2") as tar:
        for name, obj in members.items():
            data = json.dumps(obj).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def mrag_dir(tmp_path, monkeypatch):
    _bz2_json(tmp_path / "wikipedia_articles_v1.json.bz2", ARTICLES)
    _bz2_json(tmp_path / "wikipedia_queries_v1.json.bz2", QUERIES)
    topic = lambda cat, t: [{"title": f"{t} doc {i}", "text": f"{cat} {t} {i}"} for i in range(10)]  # noqa: E731
    _tar(tmp_path / "legal_documents_v1.tar.bz2", {
        "legal_documents_v1/contracts/contracts_NDA.json": topic("contracts", "NDA"),
        "legal_documents_v1/contracts/contracts_Lease.json": topic("contracts", "Lease"),
        "legal_documents_v1/acts/acts_Clean Air Act.json": topic("acts", "Clean Air Act")})
    _tar(tmp_path / "legal_queries.tar.bz2", {"legal_queries/generated_random.json": {
        "1": [{"related": ["NDA"], "text": "q1"}],
        "2": [{"related": ["Lease", "Clean Air Act"], "text": "q2"}, {"related": ["UX/UI Designer", "NDA"], "text": "q3"}],
        "3": [{"related": ["No/Such", "Gone", "Lost"], "text": "q4"}]}})
    # the authors' results: per strategy and aspect count, rat[picks - 1][query]
    n2 = {"rat": [[0.0]] + [[0.5]] * 2 + [[1.0]] * 29, "category_rat": [[0.5]] * 32}
    _tar(tmp_path / "paper_results.tar.bz2", {
        "results/25_random_sfr.json": {"mrag": {"2": n2}}, "results/25_random_e5.json": {"mrag": {"2": n2}}})
    monkeypatch.setenv(mrag.ENV, str(tmp_path))
    return tmp_path


def test_wikipedia_articles_and_queries_become_a_dataset_with_categories(mrag_dir):
    data = load_dataset("mrag-wikipedia")
    assert len(data.corpus) == 6 and list(data.queries) == ["n01-00", "n02-00", "n01-01"]
    titles = {d: data.corpus[d]["title"] for d in data.corpus}
    assert {titles[d] for d in data.qrels["n02-00"]} == {"Ta1", "Tb2"}
    assert {data.corpus[d]["label"] for d in data.qrels["n02-00"]} == {"cata", "catb"}


def test_legal_topics_are_aspects_of_ten_documents_and_missing_ones_are_left_out(mrag_dir):
    data = mrag.load_mrag("mrag-legal")
    assert len(data.corpus) == 30
    assert len(data.qrels["n02-00"]) == 20 and mrag.aspects_of(data, "n02-00") == {"Lease", "Clean Air Act"}
    assert mrag.aspects_of(data, "n02-01") == {"NDA"}  # "UX/UI Designer" has no documents
    assert "n03-00" not in data.queries  # none of its aspects has documents
    assert {data.corpus[d]["label"] for d in data.qrels["n02-00"]} == {"contracts", "acts"}


def test_success_ratios_count_aspects_and_categories_at_each_pick(mrag_dir):
    data = mrag.load_mrag("mrag-legal")
    lease = [d for d, v in data.corpus.items() if v["topic"] == "Lease"]
    nda = [d for d, v in data.corpus.items() if v["topic"] == "NDA"]
    air = [d for d, v in data.corpus.items() if v["topic"] == "Clean Air Act"]
    ranking = lease[:3] + nda[:1] + air[:1]  # the second aspect first appears at pick 5
    rat, cat = mrag.aspect_ratios(data, "n02-00", ranking, [1, 4, 5])
    assert rat == [0.5, 0.5, 1.0] and cat == [0.5, 0.5, 1.0]
    assert mrag.paper_picks(2) == [3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23]
    assert mrag.paper_picks(25) == [26, 28, 30, 32]  # the authors' results stop at 32 fetched
    scores = mrag.score_rankings(data, {"n02-00": ranking})["n02-00"]
    assert scores["success_ratio@n"] == 0.5 and scores["success_ratio"] == pytest.approx((0.5 + 10 * 1.0) / 11)


def test_the_authors_results_are_scored_at_the_same_picks(mrag_dir):
    paper = mrag.paper_scores("mrag-wikipedia")
    assert set(paper) == {"SFR-Embedding-Mistral", "e5-mistral-7b-instruct"}
    row = paper["SFR-Embedding-Mistral"]["mrag"]["n02-00"]
    assert row["success_ratio@n"] == 0.5  # rat[1]: 2 fetched
    assert row["success_ratio"] == pytest.approx((0.5 + 10 * 1.0) / 11)  # picks 3, 5, ..., 23
    both = mrag.by_aspects({"n02-00": row, "n02-01": {**row, "success_ratio": 0.0}})[2]
    assert both["success_ratio"] == pytest.approx(row["success_ratio"] / 2) and both["queries"] == 2


def test_without_the_data_folder_the_error_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv(mrag.ENV, raising=False)
    check_dataset_name("mrag-chem")  # a known name, before anything is read
    with pytest.raises(LongdocError, match=mrag.ENV):
        load_dataset("mrag-chem")
    monkeypatch.setenv(mrag.ENV, str(tmp_path))
    with pytest.raises(LongdocError, match="chem_documents_v1.tar.bz2: missing"):
        load_dataset("mrag-chem")
    (tmp_path / "chem_documents_v1.tar.bz2").write_bytes(b"not bzip2")
    (tmp_path / "chem_queries.tar.bz2").write_bytes(b"not bzip2")
    with pytest.raises(LongdocError, match="chem_documents_v1.tar.bz2: cannot read MRAG data"):
        load_dataset("mrag-chem")


@pytest.mark.skipif(not os.environ.get(mrag.ENV), reason=f"the real MRAG files: set {mrag.ENV}")
def test_the_real_files_reproduce_the_papers_headline():
    """10-aspect Wikipedia queries, SFR: standard RAG 0.231 / 0.347, MRAG 0.368 / 0.645."""
    paper = mrag.paper_scores("mrag-wikipedia")["SFR-Embedding-Mistral"]
    standard, multi = (mrag.by_aspects(paper[s])[10] for s in ("standard-rag", "mrag"))
    assert (round(standard["success_ratio"], 3), round(standard["category_success_ratio"], 3)) == (0.231, 0.347)
    assert (round(multi["success_ratio"], 3), round(multi["category_success_ratio"], 3)) == (0.368, 0.645)
    data = mrag.load_mrag("mrag-wikipedia")
    assert (len(data.corpus), len(data.queries)) == (1250, 250)
