import math

import numpy as np
import pytest

from longdoc.evaluation.bootstrap import bootstrap_ci, paired_difference


def test_constant_values_have_a_zero_width_interval():
    e = bootstrap_ci([0.7] * 50)
    assert (e.mean, e.low, e.high, e.n) == (pytest.approx(0.7), pytest.approx(0.7), pytest.approx(0.7), 50)


def test_bernoulli_interval_matches_the_normal_approximation():
    # 400 questions, 120 right: p = 0.3, standard error sqrt(p(1-p)/n) = 0.0229, so the 95% interval
    # is about 0.3 +- 0.045. The percentile bootstrap lands within a few thousandths of it.
    values = [1.0] * 120 + [0.0] * 280
    e = bootstrap_ci(values, resamples=4000, seed=1)
    se = math.sqrt(0.3 * 0.7 / 400)
    assert e.mean == pytest.approx(0.3)
    assert e.low == pytest.approx(0.3 - 1.96 * se, abs=0.006)
    assert e.high == pytest.approx(0.3 + 1.96 * se, abs=0.006)
    assert bootstrap_ci(values, resamples=4000, seed=1) == e  # seeded


def test_none_values_are_left_out_and_empty_is_nan():
    e = bootstrap_ci([1.0, None, 0.0, None])
    assert e.n == 2 and e.mean == pytest.approx(0.5)
    assert math.isnan(bootstrap_ci([None]).mean) and bootstrap_ci([]).n == 0


def test_paired_difference_sees_a_small_consistent_gain_that_separate_intervals_miss():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 200)
    a = {f"q{i}": float(v) for i, v in enumerate(base)}
    b = {f"q{i}": float(v) + 0.02 for i, v in enumerate(base)}
    d = paired_difference(a, b)
    assert d.mean == pytest.approx(0.02) and d.low == pytest.approx(0.02) and d.high == pytest.approx(0.02)
    sa, sb = bootstrap_ci(list(a.values())), bootstrap_ci(list(b.values()))
    assert sb.low < sa.high  # the separate intervals overlap
    # Only questions both configs scored are paired.
    assert paired_difference({"x": 1.0, "y": 0.0}, {"y": 1.0, "z": 0.0}).n == 1
