"""pass@k (Chen et al. 2021): known values, the exact binomial form, monotonicity, averaging."""

from __future__ import annotations

import math

import pytest

from synth.metrics import pass_at_k, pass_at_k_table

# (n, c, k, expected): edge cases, then cases worked by hand from 1 - C(n-c,k)/C(n,k)
KNOWN = [
    (4, 4, 1, 1.0),  # every sample correct
    (4, 4, 4, 1.0),
    (4, 0, 1, 0.0),  # none correct
    (200, 0, 100, 0.0),
    (10, 3, 1, 0.3),  # k=1 is the fraction correct
    (7, 2, 1, 2 / 7),
    (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (10, 3, 4, 5 / 6),  # 1 - C(7,4)/C(10,4) = 1 - 35/210
    (4, 1, 4, 1.0),  # n - c < k: every draw holds the correct one
    (6, 3, 4, 1.0),
]


@pytest.mark.parametrize("n,c,k,expected", KNOWN)
def test_known_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 16, 50])
def test_matches_exact_binomials_and_is_monotone_in_k(n):
    for c in range(n + 1):
        values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        for k, v in enumerate(values, 1):
            assert v == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)
        assert all(a <= b + 1e-15 for a, b in zip(values, values[1:]))


def test_large_n_is_stable():
    # C(1000, 500) overflows a float; the product form does not.
    assert pass_at_k(1000, 1, 500) == pytest.approx(0.5)
    assert 0.0 < pass_at_k(1000, 1, 1) == pytest.approx(0.001)


@pytest.mark.parametrize("n,c,k", [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_table_averages_over_prompts():
    # prompt a: 4 samples, 2 correct; prompt b: 4 samples, 0 correct
    ids = ["a"] * 4 + ["b"] * 4
    ok = [True, False, True, False, False, False, False, False]
    t = pass_at_k_table(ids, ok, ks=(1, 2, 4))
    assert list(t) == ["pass@1", "pass@2", "pass@4"]
    assert t["pass@1"] == pytest.approx((0.5 + 0) / 2)
    assert t["pass@2"] == pytest.approx((1 - 1 / 6 + 0) / 2)  # 1 - C(2,2)/C(4,2)
    assert t["pass@4"] == pytest.approx(0.5)


def test_table_skips_prompts_with_fewer_than_k_samples():
    # a: 4 samples, 1 correct; b: 1 sample, correct. pass@4 uses only a.
    ids = ["a", "a", "b", "a", "a"]
    ok = [False, True, True, False, False]
    t = pass_at_k_table(ids, ok, ks=(1, 4, 8))
    assert t["pass@1"] == pytest.approx((0.25 + 1.0) / 2)
    assert t["pass@4"] == pytest.approx(1.0)
    assert "pass@8" not in t  # no prompt has 8 samples


def test_table_empty_and_mismatched():
    assert pass_at_k_table([], [], ks=(1,)) == {}
    with pytest.raises(ValueError):
        pass_at_k_table(["a"], [True, False], ks=(1,))


def test_counts_form_agrees_with_rows_form():
    from synth.metrics import pass_at_k_from_counts

    ids = ["a"] * 4 + ["b"] * 4 + ["c"] * 2
    ok = [True, False, True, False] + [False] * 4 + [True, True]
    assert pass_at_k_from_counts([(4, 2), (4, 0), (2, 2)], ks=(1, 2, 4)) == pass_at_k_table(ids, ok, ks=(1, 2, 4))
