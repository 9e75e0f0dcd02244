"""Metric functions against hand-computed cases."""
import math

import pytest

from longdoc.evaluation.metrics import (answer_in_context, aspect_success, mrr_at_k, ndcg_at_k, normalize_answer,
                                        recall_at_k)

RANKING = ["d3", "d1", "d7", "d2", "d9"]


def test_recall_at_k():
    assert recall_at_k(RANKING, {"d1"}, 1) == 0.0
    assert recall_at_k(RANKING, {"d1"}, 2) == 1.0
    assert recall_at_k(RANKING, {"d1", "d2", "d8"}, 5) == pytest.approx(2 / 3)
    assert recall_at_k(RANKING, set(), 5) == 0.0


def test_mrr_at_k():
    assert mrr_at_k(RANKING, {"d7"}) == pytest.approx(1 / 3)
    assert mrr_at_k(RANKING, {"d2", "d7"}) == pytest.approx(1 / 3)  # the first relevant counts
    assert mrr_at_k(RANKING, {"d9"}, k=4) == 0.0
    assert mrr_at_k(RANKING, {"d8"}) == 0.0


def test_ndcg_at_k_graded():
    qrels = {"d1": 2, "d2": 1}
    dcg = (2 ** 2 - 1) / math.log2(3) + (2 ** 1 - 1) / math.log2(5)
    idcg = (2 ** 2 - 1) / math.log2(2) + (2 ** 1 - 1) / math.log2(3)
    assert ndcg_at_k(RANKING, qrels, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["d1", "d2"], qrels, 10) == pytest.approx(1.0)
    assert ndcg_at_k(RANKING, {"d8": 1}, 10) == 0.0


def test_squad_normalisation_and_answer_in_context():
    assert normalize_answer("The  Quick, brown FOX!") == "quick brown fox"
    assert normalize_answer("an apple a day") == "apple day"
    passages = ["The lamp was lit by Mr. Heseltine.", "Nothing here."]
    assert answer_in_context(passages, ["heseltine"]) == 1.0
    assert answer_in_context(passages, ["Warlock", "the Heseltine"]) == 1.0  # any gold answer counts
    assert answer_in_context(passages, ["Warlock"]) == 0.0
    assert answer_in_context(passages, [""]) == 0.0


def test_aspect_success():
    assert aspect_success(RANKING, ["d1", "d2"], 2) == (0.0, 0.5)
    assert aspect_success(RANKING, ["d1", "d2"], 4) == (1.0, 1.0)
    assert aspect_success(RANKING, ["d8", "d6"], 5) == (0.0, 0.0)
