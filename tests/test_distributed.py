"""The Ray path equals the local path: indexing and QA evaluation on a local Ray cluster
(dashboard and token auth off), on the small real fixtures."""
import shutil

import numpy as np
import pytest
from conftest import FIXTURES

pytest.importorskip("ray")

from longdoc import index_paths, open_index  # noqa: E402
from longdoc.config import Settings  # noqa: E402
from longdoc.evaluation.results_db import ResultsDB  # noqa: E402
from longdoc.evaluation.run_config import load_eval_config  # noqa: E402
from longdoc.evaluation.runner import run_eval  # noqa: E402

SUBSET = f"quoref:{FIXTURES / 'quoref_subset.json'}"
TIMINGS = {"latency_ms", "ttft_ms", "ms_per_token", "retrieval_ms", "peak_rss_mb"}


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from longdoc.distributed.cluster import connect

    connect("local")
    yield
    ray.shutdown()


def _index_contents(path):
    with open_index(path) as ix:
        chunks = [(d["path"], c["ordinal"], c["text"], c["char_start"], c["char_end"])
                  for d in ix.documents() for c in ix.chunks(d["id"])]
        m = ix.manifest
        ids = np.array(sorted(ix.catalog.vector_ids()))
        dense, heads = ix.catalog.vectors(ids, m["dim"], m["heads"], m["head_dim"])
        rankings = [[h.chunk_id for h in ix.search(q, k=8, mode=mode)]
                    for q in ("fog horn in the harbour", "how is a tide table read", "keepers' lives")
                    for mode in ("dense", "multihead", "hybrid")]
        return chunks, dense, heads, rankings, ix.status()["vectors_in_sync"]


@pytest.mark.slow
def test_indexing_on_ray_equals_indexing_here(tmp_path, ray_cluster):
    from longdoc.distributed.indexing import RayEngine

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("fog_signals.txt", "lighthouses.md", "tides.rst", "keepers.html", "lighthouse_log.pdf"):
        shutil.copy(FIXTURES / name, corpus / name)
    (corpus / "empty.md").write_text("")
    # 12 MB takes seconds to chunk: past the time limit here and on Ray alike, so it is skipped by both
    paragraph = (FIXTURES / "fog_signals.txt").read_text()
    (corpus / "big.txt").write_text("\n\n".join(f"{i}. {paragraph}" for i in range(12 * 2**20 // len(paragraph))))
    settings = Settings().replace(parse_timeout_s=0.5, head_vectors=True)
    local = index_paths(tmp_path / "local", [corpus], settings, progress=False)
    assert (str(corpus / "big.txt"), "took over 0.5 s to load and chunk; skipped (the limit is the parse_timeout_s "
            "setting)") in local.skipped_files
    remote = index_paths(tmp_path / "ray", [corpus], settings, progress=False, engine=RayEngine("local"))
    assert (remote.added, remote.skipped, remote.chunks_embedded) == (local.added, local.skipped, local.chunks_embedded)
    assert remote.skipped_files == local.skipped_files
    a, b = _index_contents(tmp_path / "local"), _index_contents(tmp_path / "ray")
    assert a[0] == b[0] and len(a[0]) == local.chunks_embedded  # the same chunks, offsets and order
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    np.testing.assert_allclose(a[2], b[2], atol=1e-5)
    assert a[3] == b[3] and b[4]  # the same rankings; FAISS files in sync
    again = index_paths(tmp_path / "ray", [corpus], settings, progress=False, engine=RayEngine("local"))
    assert again.unchanged == local.added and again.chunks_embedded == 0  # incremental on Ray too


@pytest.mark.slow
def test_eval_on_ray_equals_eval_here(tmp_path, ray_cluster):
    flags = dict(datasets=[{"name": SUBSET, "limit": 3}], workdir=str(tmp_path / "work"),
                 settings={"answer": {"max_new_tokens": 8}},
                 **{"retrieval.modes": ["hybrid"], "retrieval.k": [1, 5], "qa.attention": ["full", "block"], "qa.k": [3]})
    run_eval(load_eval_config(None, **flags), tmp_path / "local.db", progress=False)
    counts = run_eval(load_eval_config(None, ray="local", **flags), tmp_path / "ray.db", progress=False)
    assert counts["scored"] == 3 + 3 * 2

    def rows(path):
        out = {}
        with ResultsDB(path) as db:
            for cell in db.cells():
                for qid, row in db.rows(cell).items():
                    detail = row["detail"]
                    shares = [c.pop("attention") for c in detail.get("citations", [])]
                    out[(cell, qid)] = ({k: v for k, v in row["metrics"].items() if k not in TIMINGS}, detail, shares)
        return out

    here, there = rows(tmp_path / "local.db"), rows(tmp_path / "ray.db")
    assert here.keys() == there.keys()
    for key in here:
        assert here[key][:2] == there[key][:2], key  # same answers, scores and citations
        assert here[key][2] == pytest.approx(there[key][2], abs=2e-3)
