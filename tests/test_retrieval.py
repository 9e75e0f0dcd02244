"""Search modes, fusion, filters, grouping, context and bad input over a real index."""
import math

import numpy as np
import pytest

from longdoc import index_paths, open_index
from longdoc.config import Settings
from longdoc.errors import IndexMismatchError, IndexNotFoundError, LongdocError
from longdoc.retrieval import Filters
from longdoc.retrieval.aspects import merge_by_best_rank, query_parts
from longdoc.retrieval.fusion import reciprocal_rank_fusion
from longdoc.retrieval.multihead import multihead_search
from longdoc.storage import VectorStore


def test_rrf_hand_computed():
    fused, ranks = reciprocal_rank_fusion({"a": [(1, 9.0), (2, 8.0)], "b": [(2, 0.5), (3, 0.4)]},
                                          {"a": 1.0, "b": 2.0}, rrf_k=10)
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 11)
    assert scores[2] == pytest.approx(1 / 12 + 2 / 11)
    assert scores[3] == pytest.approx(2 / 12)
    assert [cid for cid, _ in fused] == [2, 3, 1]
    assert ranks[2] == {"a": 2, "b": 1}


def test_rrf_leaves_out_hits_under_their_lists_floor():
    lists = {"a": [(1, 0.9), (2, 0.8)], "b": [(3, 7.0), (2, 2.0), (4, 0.5)]}
    fused, ranks = reciprocal_rank_fusion(lists, {"a": 1.0, "b": 1.0}, rrf_k=10, floors={"b": 1.0})
    scores = dict(fused)
    assert 4 not in scores and ranks[2] == {"a": 2, "b": 2}
    assert scores[2] == pytest.approx(1 / 12 + 1 / 12) and scores[3] == pytest.approx(1 / 11)
    assert reciprocal_rank_fusion(lists, {"a": 1.0, "b": 1.0}, rrf_k=10, floors={"b": 0.0}) == \
        reciprocal_rank_fusion(lists, {"a": 1.0, "b": 1.0}, rrf_k=10)


def test_a_query_splits_into_sentences_only_from_the_set_count():
    story = "The diaphone groaned all night. Spring tides flooded the quay. The lamp was electric by 1931."
    assert query_parts(story, 3) == [story, "The diaphone groaned all night.", "Spring tides flooded the quay.",
                                     "The lamp was electric by 1931."]
    assert query_parts(story, 4) == [story] and query_parts(story, 0) == [story]
    assert query_parts("When did the lamp arrive?", 1) == ["When did the lamp arrive?"]


def test_merging_by_best_rank_hand_computed():
    first = [(1, 0.9), (2, 0.8), (3, 0.7)]
    second = [(4, 0.6), (3, 0.5), (5, 0.4)]
    # rank 0: 1 (0.9) before 4 (0.6); rank 1: 2 (0.8) before 3 (0.5, its best place); rank 2: 5
    assert merge_by_best_rank([first, second]) == [(1, 0.9), (4, 0.6), (2, 0.8), (3, 0.5), (5, 0.4)]
    assert merge_by_best_rank([first]) == first and merge_by_best_rank([]) == []


def test_multihead_vote_hand_computed(tmp_path):
    # Two heads in 2-d. Head 0 ranks 10 > 11 > 12, head 1 ranks 12 > 11 > 10.
    store = VectorStore(tmp_path, 2, 2, 2)
    ids = np.array([10, 11, 12], np.int64)
    angles = np.array([0.0, 0.6, 1.2])
    vecs = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    store.heads[0].add_with_ids(vecs, ids)
    store.heads[1].add_with_ids(vecs[::-1].copy(), ids)
    store.dense.add_with_ids(vecs, ids)
    query = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    votes = dict(multihead_search(store, query, np.array([3.0, 1.0]), n=3, k=3))
    assert votes[10] == pytest.approx(3 * 1 + 1 * 0.25)
    assert votes[11] == pytest.approx(3 * 0.5 + 1 * 0.5)
    assert votes[12] == pytest.approx(3 * 0.25 + 1 * 1)
    only = dict(multihead_search(store, query, np.array([3.0, 1.0]), n=3, k=3, allowed=np.array([11, 12])))
    assert set(only) == {11, 12}


def index_of_fixtures(corpus, idx, embedder, head_vectors: bool):
    """The fixture documents copied into `corpus` and indexed into `idx` in small chunks."""
    import shutil

    from conftest import DOC_FIXTURES

    for p in DOC_FIXTURES:
        shutil.copy(p, corpus / p.name)
    settings = Settings().replace(chunk_tokens=32, chunk_overlap=4, head_vectors=head_vectors)
    index_paths(idx, [corpus], settings, progress=False, embedder=embedder)
    return idx


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, embedder):
    return index_of_fixtures(tmp_path_factory.mktemp("corpus"), tmp_path_factory.mktemp("index"), embedder, True)


@pytest.fixture
def ix(index_dir, embedder):
    with open_index(index_dir) as ix:
        ix._embedder = embedder
        yield ix


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hybrid", "dense", "multihead", "bm25"])
def test_every_mode_finds_the_passage(ix, mode):
    hits = ix.search("When did electric lamps arrive at Carrow Point?", k=5, mode=mode)
    assert any("1931" in h.text for h in hits[:3]), [h.text for h in hits]
    for h in hits:
        assert mode in h.ranks or (mode == "hybrid" and set(h.ranks) <= {"dense", "multihead", "bm25"})


@pytest.mark.slow
def test_hybrid_hits_explain_their_ranks(ix, index_dir, embedder):
    hits = ix.search("Fresnel lens prisms bend light into a beam", k=5)
    top = hits[0]
    # Default weights (bench/fusion_weights.py): dense and BM25; multi-head votes only when weighted.
    assert "Fresnel" in top.text and set(top.ranks) == {"dense", "bm25"}
    with open_index(index_dir, settings=Settings().replace(search_weight_multihead=1.0)) as weighted:
        weighted._embedder = embedder
        assert set(weighted.search("Fresnel lens prisms bend light into a beam", k=5)[0].ranks) == {"dense", "multihead", "bm25"}
    assert top.section[-1] == "Lighting" and top.path.endswith("lighthouses.md")
    assert ix.document_text(top.doc_id)[top.char_start:top.char_end] == top.text
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dense", "multihead", "bm25"])
def test_a_query_of_several_sentences_is_searched_one_sentence_at_a_time(index_dir, embedder, mode):
    """The whole query's list and each sentence's own, merged by best rank: every topic's best chunk comes
    first. Searched whole only (aspect_sentences 0), the list is another."""
    sentences = ["The diaphone groaned across the bay.", "Spring tides come when the Sun and the Moon pull together.",
                 "Electric lamps arrived at Carrow Point."]
    story = " ".join(sentences)

    def lists(query, **settings):
        with open_index(index_dir, settings=Settings().replace(**settings)) as ix:
            ix._embedder = embedder
            return ix.searcher.ranked_lists(query, {mode}, 50, None)[mode]

    split = lists(story)
    whole = lists(story, search_aspect_sentences=0)
    alone = [lists(s) for s in sentences]
    merged = merge_by_best_rank([whole] + alone)[:50]  # batched against alone: scores agree to float error
    assert [c for c, _ in split] == [c for c, _ in merged]
    assert [s for _, s in split] == pytest.approx([s for _, s in merged], abs=1e-5)
    firsts = {a[0][0] for a in alone}
    tops = firsts | {whole[0][0]}
    assert len(firsts) == 3 and {c for c, _ in split[:len(tops)]} == tops
    assert whole != split and whole == lists(story, search_aspect_sentences=4)


@pytest.mark.slow
def test_hybrid_gives_a_split_query_multihead_votes_where_the_index_stores_them(index_dir, embedder, tmp_path):
    """A query searched by its sentences fuses multi-head votes at weight_multihead_aspects, exactly as
    reciprocal-rank fusion of its three lists; a question of one sentence, a weight of 0, or an index
    without head vectors fuses dense and BM25 alone (no error)."""
    story = ("The diaphone groaned across the bay. Spring tides come when the Sun and the Moon pull together. "
             "Electric lamps arrived at Carrow Point.")
    question = "When did electric lamps arrive at Carrow Point?"

    def hybrid(index, **settings):
        with open_index(index, settings=Settings().replace(**settings)) as ix:
            ix._embedder = embedder
            s = ix.searcher
            weights = s.fusion_weights(story)
            lists = s.ranked_lists(story, {m for m, w in weights.items() if w > 0}, s.depth(10, "chunk"), None)
            fused, _ = reciprocal_rank_fusion(lists, weights, s.settings.rrf_k, {"bm25": s.bm25_floor(story)})
            return weights, ix.search(story, k=10), [c for c, _ in fused[:10]], ix.search(question, k=10)

    weights, hits, fused, one = hybrid(index_dir)
    assert weights == {"dense": 0.25, "multihead": Settings().search.weight_multihead_aspects, "bm25": 1.0}
    assert weights["multihead"] > 0 and any("multihead" in h.ranks for h in hits)
    assert [h.chunk_id for h in hits] == fused
    assert all("multihead" not in h.ranks for h in one)
    weights, hits, fused, _ = hybrid(index_dir, search_weight_multihead_aspects=0.0)
    assert weights["multihead"] == 0 and all("multihead" not in h.ranks for h in hits)
    assert [h.chunk_id for h in hits] == fused
    (tmp_path / "corpus").mkdir()
    weights, hits, _, _ = hybrid(index_of_fixtures(tmp_path / "corpus", tmp_path / "index", embedder, False))
    assert weights["multihead"] == 0 and hits and all("multihead" not in h.ranks for h in hits)
    with pytest.raises(LongdocError, match="search weights must be at least 0: weight_multihead_aspects = -1"):
        Settings().replace(search_weight_multihead_aspects=-1.0)


@pytest.mark.slow
def test_the_bm25_term_weight_bounds_what_one_term_earns(ix):
    """term_weight is (k1 + 1) x the mean idf of the query's terms: what a chunk earns, at most, for one
    term (BM25's term frequency saturates below it). The idf here comes from count queries, not from
    the document frequencies term_weight reads."""
    import math

    text = ix.text_index
    n = text._searcher.num_docs
    for term in ("lighthouse", "keepers", "fresnel", "weather"):
        query, _ = text._index.parse_query_lenient(term, ["text"])
        df = text._searcher.search(query, 1, count=True).count
        assert df > 0
        assert text.term_weight([term]) == pytest.approx(2.2 * math.log(1 + (n - df + 0.5) / (df + 0.5)))
        assert all(score <= text.term_weight([term]) for _, score in text.search([term], 50))
    both = text.term_weight(["lighthouse", "fresnel"])
    assert both == pytest.approx((text.term_weight(["lighthouse"]) + text.term_weight(["fresnel"])) / 2)
    assert text.term_weight(["zyxwvut"]) > text.term_weight(["lighthouse"])  # a word no chunk holds: idf at its highest
    assert text.term_weight([]) == 0.0


@pytest.mark.slow
def test_hybrid_leaves_out_bm25_hits_under_the_floor(index_dir, embedder):
    """A BM25 hit joins hybrid fusion only at bm25_min_terms query terms' worth; with a floor no hit
    reaches, hybrid ranks as dense does, and with none every BM25 hit takes part."""
    query = "How did keepers spend the long winter evenings alone?"

    def search(**settings):
        with open_index(index_dir, settings=Settings().replace(**settings)) as ix:
            ix._embedder = embedder
            return ix.search(query, k=8), ix.searcher.bm25_floor(query), ix.search(query, k=8, mode="bm25")

    unreachable, floor, bm25 = search(search_bm25_min_terms=100.0)
    dense_order = [h.chunk_id for h in sorted(unreachable, key=lambda h: h.ranks["dense"])]
    assert [h.chunk_id for h in unreachable] == dense_order and all(set(h.ranks) == {"dense"} for h in unreachable)
    assert floor > max(h.score for h in bm25)
    open_, floor, _ = search(search_bm25_min_terms=0.0)
    assert floor == 0.0 and any("bm25" in h.ranks for h in open_)
    default, floor, _ = search()
    assert all(h.scores["bm25"] >= floor for h in default if "bm25" in h.ranks)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hybrid", "dense", "multihead", "bm25"])
def test_filters_restrict_every_mode(ix, mode):
    by_glob = ix.search("keeper lamp light", k=20, mode=mode, filters={"path_glob": "*.html"})
    assert by_glob and all(h.path.endswith("keepers.html") for h in by_glob)
    by_section = ix.search("keeper lamp light", k=20, mode=mode, filters=Filters(section="isolation"))
    assert by_section and all("isolation" in " ".join(h.section).lower() for h in by_section)
    pdf = next(d["path"] for d in ix.documents() if d["path"].endswith(".pdf"))
    by_doc = ix.search("weather", k=20, mode=mode, filters={"documents": [pdf]})
    assert by_doc and {h.path for h in by_doc} == {pdf}
    assert ix.search("weather", k=5, mode=mode, filters={"path_glob": "*.docx"}) == []


@pytest.mark.slow
def test_per_document_grouping_gives_one_hit_per_document(ix):
    hits = ix.search("lighthouse keeper", k=10, per="document")
    assert len(hits) == len({h.doc_id for h in hits}) >= 4


@pytest.mark.slow
def test_context_merges_neighbouring_chunks(ix):
    plain = ix.search("diaphone compressed air piston", k=1, mode="dense")[0]
    wide = ix.search("diaphone compressed air piston", k=1, mode="dense", context=1)[0]
    text = ix.document_text(wide.doc_id)
    assert wide.char_start <= plain.char_start and wide.char_end >= plain.char_end
    assert (wide.char_end - wide.char_start) > (plain.char_end - plain.char_start)
    assert text[wide.char_start:wide.char_end] == wide.text
    merged = ix.search("fog signal", k=6, mode="dense", context=2, filters={"path_glob": "*fog_signals.txt"})
    spans = sorted((h.char_start, h.char_end) for h in merged)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "overlapping passages are merged"


@pytest.mark.slow
def test_bad_queries_are_refused_and_nothing_is_written(ix, index_dir):
    before = (index_dir / "catalog.sqlite").stat().st_mtime_ns, ix.catalog.generation
    for kwargs, msg in [({"query": ""}, "empty query"), ({"query": "   "}, "empty query"),
                        ({"query": "x" * 2_000_000}, "limit"), ({"query": "fog", "mode": "magic"}, "unknown search mode"),
                        ({"query": "fog", "per": "page"}, "unknown grouping"), ({"query": "fog", "k": 0}, "at least 1")]:
        with pytest.raises(LongdocError, match=msg):
            ix.search(**kwargs)
    assert ((index_dir / "catalog.sqlite").stat().st_mtime_ns, ix.catalog.generation) == before


@pytest.mark.slow
def test_missing_half_built_and_foreign_indexes_are_refused(tmp_path, index_dir):
    with pytest.raises(IndexNotFoundError, match="no longdoc index"):
        open_index(tmp_path / "nowhere")
    from longdoc.storage import Catalog

    Catalog.open(tmp_path / "half", create=True).close()  # a catalog with no manifest: the first run died early
    with open_index(tmp_path / "half") as half:
        with pytest.raises(IndexNotFoundError, match="half-built"):
            half.search("fog")
    with pytest.raises(IndexMismatchError, match="built with embedder 'all-MiniLM-L6-v2'"):
        open_index(index_dir, embedder="BAAI/bge-small-en-v1.5")


@pytest.mark.slow
def test_cross_encoder_rerank_orders_by_its_scores(ix, embedder):
    """A cross-encoder built from the local MiniLM weights (its scoring head is untrained, so this
    checks the plumbing: candidates are reordered by the model's own scores)."""
    from longdoc.retrieval.rerank import load_cross_encoder

    query = "keeper lamp light"
    hits = ix.search(query, k=4, rerank=embedder.source)
    assert len(hits) == 4 and [h.ranks["rerank"] for h in hits] == [1, 2, 3, 4]
    scores = load_cross_encoder(embedder.source).predict([(query, h.text) for h in hits])  # the same loaded model
    assert list(scores) == pytest.approx([h.score for h in hits], abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    from longdoc.errors import ModelError

    with pytest.raises(ModelError, match="cannot load cross-encoder"):
        ix.search(query, k=2, rerank="longdoc-test/no-such-cross-encoder")


def test_query_terms_are_words_without_stopwords():
    from longdoc.retrieval.bm25 import query_terms

    assert query_terms('What is the "lens" made of? NEAR(a b) AND') == ["lens", "made", "near", "b"]
    assert query_terms("to be or not to be") == ["to", "be", "or", "not"]  # nothing but stopwords: keep them
    assert query_terms("?!") == []


def test_bm25_over_texts_in_memory_hand_computed():
    from longdoc.retrieval.bm25 import bm25_scores

    texts = ["the fog bell rang", "fog fog horn", "a lamp", "fog over the bay"]
    scores = bm25_scores("Which fog horn?", texts)
    # horn is in 1 of 4 texts: idf ln(1 + 3.5/1.5); fog in 3: ln(1 + 1.5/3.5); lengths 4, 3, 2, 4 (mean 3.25)
    idf_horn, idf_fog = math.log(1 + 3.5 / 1.5), math.log(1 + 1.5 / 3.5)

    def term(tf, n):
        return tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * n / 3.25))

    assert scores == pytest.approx([idf_fog * term(1, 4), idf_fog * term(2, 3) + idf_horn * term(1, 3), 0.0,
                                    idf_fog * term(1, 4)])
    assert scores[2] == 0.0 and bm25_scores("fog", []) == []
