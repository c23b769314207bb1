import numpy as np
import pytest

import qa.kcenter as kc
from qa.kcenter import kcenter_greedy, kcenter_greedy_plain


def _clustered(n=1500, d=16, k=12, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)).astype(np.float32)
    x = centers[rng.integers(0, k, n)] + 0.4 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_worked_example_on_a_line():
    # points at 0, 1, 2, 10 with 0 labelled: 10 is farthest (10), then 2 (min(2, 8) = 2)
    x = np.array([[0.0], [1.0], [2.0], [10.0]])
    picks, dist = kcenter_greedy(x, 2, initial=[0])
    assert picks.tolist() == [3, 2]
    assert np.allclose(dist, [10.0, 2.0])


def test_without_labelled_points_the_first_pick_is_the_most_typical():
    x = np.array([[0.0], [4.0], [5.0], [6.0], [20.0]])  # mean 7: 6 is nearest
    picks, dist = kcenter_greedy(x, 2)
    assert picks.tolist() == [3, 4] and np.isinf(dist[0]) and dist[1] == pytest.approx(14)


@pytest.mark.parametrize("n_init", [0, 5, 40])  # 40 > INIT_CANDIDATES: faiss proposes them
@pytest.mark.parametrize("weighted", [False, True])
def test_same_picks_as_the_plain_algorithm(n_init, weighted):
    x = _clustered()
    rng = np.random.default_rng(1)
    init = rng.choice(len(x), n_init, replace=False)
    w = rng.uniform(0.2, 2.0, len(x)) if weighted else None
    fast, d_fast = kcenter_greedy(x, 150, initial=init, weights=w)
    plain, d_plain = kcenter_greedy_plain(x, 150, initial=init, weights=w)
    assert fast.tolist() == plain.tolist()
    assert np.allclose(d_fast[np.isfinite(d_fast)], d_plain[np.isfinite(d_plain)], atol=1e-9)
    assert not set(fast) & set(init)


def test_same_picks_when_the_candidate_set_is_rebuilt_often(monkeypatch):
    # a tiny candidate set forces the rebuild path on almost every pick
    monkeypatch.setattr(kc, "CANDIDATE_SET", 3)
    monkeypatch.setattr(kc, "REFRESH_BATCH", 2)
    x = _clustered(n=800, seed=3)
    init = np.arange(10)
    assert kcenter_greedy(x, 120, initial=init)[0].tolist() == \
        kcenter_greedy_plain(x, 120, initial=init)[0].tolist()


def test_plain_k_center_radius_never_grows():
    x = _clustered(seed=4)
    _, dist = kcenter_greedy(x, 100, initial=[0])
    assert (np.diff(dist) <= 1e-12).all()  # each pick is the farthest left: non-increasing


def test_groups_make_a_picks_mates_ineligible_and_eligible_limits_picks():
    x = np.array([[0.0], [10.0], [10.1], [5.0], [20.0]])
    groups = np.array([-1, 7, 7, -1, 7])  # 1, 2 and 4 are copies of each other
    picks, _ = kcenter_greedy(x, 5, initial=[0], groups=groups)
    assert picks.tolist() == [4, 3]  # 20 first; its copies 1 and 2 are out; then 5
    picks, _ = kcenter_greedy(x, 5, initial=[0], eligible=[1, 3])
    assert picks.tolist() == [1, 3]


def test_zero_budget_and_bad_input():
    x = _clustered(n=50)
    assert kcenter_greedy(x, 0)[0].tolist() == []
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        kcenter_greedy(bad, 3)
    with pytest.raises(ValueError, match="budget must be a whole number"):
        kcenter_greedy(x, -1)
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        kcenter_greedy(x, 3, weights=-np.ones(len(x)))
    with pytest.raises(ValueError, match="outside 0..49"):
        kcenter_greedy(x, 3, initial=[99])
