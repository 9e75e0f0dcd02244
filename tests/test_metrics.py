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


def test_exact_match_normalises_and_takes_the_best_gold():
    from longdoc.evaluation.metrics import exact_match

    assert exact_match("The Eiffel Tower!", ["eiffel tower"]) == 1.0
    assert exact_match("  an  apple ", ["Apple", "pear"]) == 1.0
    assert exact_match("Eiffel", ["eiffel tower", "the tower"]) == 0.0
    assert exact_match("", []) == 1.0 and exact_match("Paris", []) == 0.0  # SQuAD v2 unanswerable


def test_f1_by_hand():
    from longdoc.evaluation.metrics import f1_score

    # pred tokens [henry, hall, keeper], gold [henry, hall]: P = 2/3, R = 1, F1 = 0.8
    assert f1_score("Henry Hall, the keeper", ["Henry Hall"]) == pytest.approx(0.8)
    # repeated tokens count once per occurrence: pred [a1, a1, b] vs gold [a1, b, c]: overlap 2, P = R = 2/3
    assert f1_score("x x y", ["x y z"]) == pytest.approx(2 / 3)
    # several golds: the best wins; gold "1755" gives 0, gold "in 1755 keeper" gives P = 1/2, R = 1/3 -> 0.4
    assert f1_score("keeper Hall", ["1755", "in 1755 keeper"]) == pytest.approx(0.4)
    assert f1_score("nothing shared", ["other words"]) == 0.0
    assert f1_score("", ["x"]) == 0.0 and f1_score("", []) == 1.0


def test_contains_answer_on_word_boundaries():
    from longdoc.evaluation.metrics import contains_answer

    assert contains_answer("It was Henry Hall, aged 94.", ["henry hall"]) == 1.0
    assert contains_answer("Hallway", ["hall"]) == 0.0
    assert contains_answer("The answer is 3 goals", ["3"]) == 1.0 and contains_answer("30", ["3"]) == 0.0
