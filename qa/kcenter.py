"""k-center greedy (the core-set rule of Sener & Savarese 2018), exact and fast.

The rule: repeatedly pick the point farthest from every center chosen so far (the labelled
points start as centers). Written plainly (:func:`kcenter_greedy_plain`) each pick scans every
point: ``budget`` passes over an n x d array, 1,000 passes over 1M x 512 float32 (2 GB) is
minutes of memory traffic. :func:`kcenter_greedy` makes the same picks with *lazy* updates:

* every point keeps an upper bound ``u`` of its squared distance to the nearest center and the
  number of centers that bound has seen (its stamp); adding a center only lowers distances, so
  a bound stays an upper bound;
* the point with the largest bound is refreshed against the centers it has not seen yet (with
  a batch of the next-largest bounds); when the largest bound is up to date it is the largest
  true distance, and it is picked. Points far from every new center are never touched again.

The starting bounds come from the labelled points: faiss (exact ``IndexFlatL2``, BLAS) finds
each point's few nearest labelled points, whose distances are then recomputed in float64; the
minimum of those is exact unless more than :data:`INIT_CANDIDATES` labelled points tie within
float32 rounding. Distances are computed in float64 throughout (``|x|^2 + |c|^2 - 2 x.c``), so
the two implementations agree to ~1e-15 and make identical picks on data without exact ties;
exact ties go to the lower row index in both.

``weights`` turn the rule into weighted k-center (pick the largest ``weight * distance``), used
to mix uncertainty or rare-class priority into diversity. ``groups`` (e.g. near-duplicate
clusters) make a pick's group-mates ineligible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Each point's starting bound is the exact minimum over this many nearest labelled points
# (faiss float32 order, recomputed in float64): the true nearest is missed only if more than
# this many labelled points lie within float32 rounding of it.
INIT_CANDIDATES = 8
# Rows converted to float64 at a time in full scans: 32,768 x 512 x 8 bytes = 128 MB.
CHUNK_ROWS = 32_768
# faiss ranks in float32: two squared distances closer than this (relative to |x|^2 + |c|^2,
# a generous bound on float32 rounding of a 512-term dot product) may be in the wrong order.
FLOAT32_TIE = 1e-4
# Stale points refreshed together when the largest bound is out of date. Measured on 1M x 512
# (benchmarks/bench_selection.py): 64 refreshes most picks in one round; far larger batches
# spend their time on points that were never going to be picked.
REFRESH_BATCH = 64
# The lazy loop works on the rows with the largest keys (bounds times weights), this many;
# the set is rebuilt (one O(n) partition) only when all of them have fallen below the rest.
CANDIDATE_SET = 4096

ProgressFn = Callable[[float, str], None]


def _as_matrix(vectors) -> np.ndarray:
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (n x d), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"vectors must be numbers, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)  # no copy for float32 input
    for k in range(0, len(x), CHUNK_ROWS):
        if not np.isfinite(x[k:k + CHUNK_ROWS]).all():
            raise ValueError("vectors contain NaN or infinite values; drop or recompute those "
                             "rows")
    return x


def _rows(n: int, idx, what: str) -> np.ndarray:
    a = np.asarray([] if idx is None else idx)
    if a.dtype == bool:
        if a.shape != (n,):
            raise ValueError(f"{what} as a mask must have one entry per row ({n}), got {a.shape}")
        return np.flatnonzero(a)
    a = a.astype(np.int64).ravel()
    if len(a) and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"{what} holds row numbers outside 0..{n - 1}")
    return np.unique(a)


def sq_norms(x: np.ndarray) -> np.ndarray:
    """Squared L2 norm of every row, in float64."""
    out = np.empty(len(x), np.float64)
    for k in range(0, len(x), CHUNK_ROWS):
        c = x[k:k + CHUNK_ROWS].astype(np.float64)
        out[k:k + CHUNK_ROWS] = np.einsum("ij,ij->i", c, c)
    return out


def sq_dists(x: np.ndarray, sq: np.ndarray, rows, centers) -> np.ndarray:
    """Squared distances (float64, len(rows) x len(centers)) between rows and centers of x."""
    rows = np.asarray(rows, np.int64)
    centers = np.asarray(centers, np.int64)
    c = x[centers].astype(np.float64)
    out = np.empty((len(rows), len(centers)), np.float64)
    for k in range(0, len(rows), CHUNK_ROWS):
        r = rows[k:k + CHUNK_ROWS]
        d = sq[r, None] + sq[centers][None, :] - 2.0 * (x[r].astype(np.float64) @ c.T)
        out[k:k + CHUNK_ROWS] = np.maximum(d, 0.0)
    return out


def _check(x, budget, initial, eligible, weights):
    n = len(x)
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise ValueError(f"budget must be a whole number >= 0, got {budget!r}")
    init = _rows(n, initial, "initial")
    elig = np.ones(n, bool) if eligible is None else np.zeros(n, bool)
    if eligible is not None:
        elig[_rows(n, eligible, "eligible")] = True
    elig[init] = False
    if weights is None:
        w = np.ones(n, np.float64)
    else:
        w = np.asarray(weights, np.float64).ravel()
        if w.shape != (n,):
            raise ValueError(f"weights must have one value per row ({n}), got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite and >= 0")
    return init, elig, w


def _first_center(x: np.ndarray, sq: np.ndarray, elig: np.ndarray) -> int:
    """Without labelled points the first center is the eligible point nearest the mean of
    the eligible points (the most typical one), lowest row on a tie."""
    rows = np.flatnonzero(elig)
    mean = np.zeros(x.shape[1], np.float64)
    for k in range(0, len(rows), CHUNK_ROWS):
        mean += x[rows[k:k + CHUNK_ROWS]].astype(np.float64).sum(0)
    mean /= len(rows)
    d = np.empty(len(rows), np.float64)
    for k in range(0, len(rows), CHUNK_ROWS):
        r = rows[k:k + CHUNK_ROWS]
        d[k:k + CHUNK_ROWS] = sq[r] + mean @ mean - 2.0 * (x[r].astype(np.float64) @ mean)
    return int(rows[np.argmin(d)])


def kcenter_greedy_plain(vectors, budget: int, *, initial=None, eligible=None, weights=None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The textbook k-center greedy: every pick updates every point (O(n * budget * d)).
    Same arguments and result as :func:`kcenter_greedy`; kept as the reference the fast
    version is tested and benchmarked against."""
    x = _as_matrix(vectors)
    init, elig, w = _check(x, budget, initial, eligible, weights)
    n = len(x)
    sq = sq_norms(x)
    x64 = x.astype(np.float64)
    u = np.full(n, np.inf)
    for k in range(0, len(init), 256):
        u = np.minimum(u, sq_dists(x, sq, np.arange(n), init[k:k + 256]).min(1))
    picks, dists = [], []
    while len(picks) < budget and elig.any():
        if not len(init) and not picks:
            i, dist = _first_center(x, sq, elig), np.inf
        else:
            key = np.where(elig, w * np.sqrt(u), -np.inf)
            i = int(np.argmax(key))
            dist = float(np.sqrt(u[i]))
        picks.append(i)
        dists.append(dist)
        elig[i] = False
        u = np.minimum(u, np.maximum(sq + sq[i] - 2.0 * (x64 @ x64[i]), 0.0))
    return np.asarray(picks, np.int64), np.asarray(dists, np.float64)


def _initial_bounds(x: np.ndarray, sq: np.ndarray, init: np.ndarray) -> np.ndarray:
    """Exact squared distance (float64) of every row to its nearest initial center. faiss
    (float32, BLAS) ranks the INIT_CANDIDATES nearest; the nearest is recomputed in float64,
    and where the runner-up is within float32 rounding of it, all candidates are."""
    n = len(x)
    k = min(INIT_CANDIDATES, len(init))
    if len(init) <= k:
        return sq_dists(x, sq, np.arange(n), init).min(1)
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x[init])
    u = np.empty(n, np.float64)
    step = 4096  # rows per float64 recomputation: (4096 x 512) float64 = 16 MB per gather
    for s in range(0, n, CHUNK_ROWS):
        d32, cand = index.search(x[s:s + CHUNK_ROWS], k)
        c = init[cand]  # (m, k) rows of x
        for t in range(0, len(c), step):
            r = np.arange(s + t, s + min(t + step, len(c)))
            cc = c[t:t + step]
            xr = x[r].astype(np.float64)
            best = np.maximum(sq[r] + sq[cc[:, 0]] - 2.0 * np.einsum(
                "md,md->m", xr, x[cc[:, 0]].astype(np.float64)), 0.0)
            # float32 distances are good to ~1e-6 of |x|^2 + |c|^2: closer runners-up are
            # ties as far as faiss can tell, so every candidate of those rows is recomputed
            dd = d32[t:t + step]
            tie = (dd[:, 1] - dd[:, 0]) <= FLOAT32_TIE * (sq[r] + sq[cc].max(1))
            for j in np.flatnonzero(tie):
                dj = sq[r[j]] + sq[cc[j]] - 2.0 * (x[cc[j]].astype(np.float64) @ xr[j])
                best[j] = max(float(dj.min()), 0.0)
            u[r] = best
    return u


def kcenter_greedy(vectors, budget: int, *, initial=None, eligible=None, weights=None,
                   groups=None, progress: ProgressFn | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``budget`` rows of ``vectors`` (n x d) by k-center greedy: each pick is the eligible
    row with the largest ``weight * distance`` to its nearest center, where the centers are
    the ``initial`` rows (the labelled ones) and the rows picked so far.

    ``eligible``: rows that may be picked (row numbers or a boolean mask; default every row not
    in ``initial``). ``weights``: per-row priority >= 0 (default 1: plain k-center).
    ``groups``: per-row group number (-1 = none); once a row is picked, the other rows of its
    group are no longer eligible (near-duplicates of a pick). Without ``initial`` rows the first
    pick is the eligible row nearest the mean.

    Returns ``(picks, distances)``: the row numbers in pick order, and each pick's Euclidean
    distance to its nearest center when it was picked (inf for a first pick without
    ``initial``). Stops early when no eligible row is left. Same picks as
    :func:`kcenter_greedy_plain`, without rescanning every row per pick (see the module
    docstring)."""
    x = _as_matrix(vectors)
    init, elig, w = _check(x, budget, initial, eligible, weights)
    n = len(x)
    grp = None
    if groups is not None:
        grp = np.asarray(groups, np.int64).ravel()
        if grp.shape != (n,):
            raise ValueError(f"groups must have one value per row ({n}), got {grp.shape}")
    prog = progress or (lambda frac, msg: None)
    sq = sq_norms(x)
    centers = np.empty(len(init) + budget, np.int64)
    centers[:len(init)] = init
    n_centers = len(init)
    c64 = np.empty((len(init) + budget, x.shape[1]), np.float64)  # the centers, converted once
    c64[:n_centers] = x[init]
    u = _initial_bounds(x, sq, init) if len(init) else np.full(n, np.inf)
    stamp = np.full(n, n_centers, np.int64)  # how many centers each bound has seen
    key = np.where(elig, w * np.sqrt(u), -np.inf)
    members = _group_members(grp) if grp is not None else None
    picks: list[int] = []
    dists: list[float] = []
    every = max(1, budget // 100)
    cand = theta = None  # the candidate set and its threshold (see _candidates)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # small products: threads only wait
        while len(picks) < budget:
            if n_centers == 0:  # nothing labelled: start from the most typical row
                if not elig.any():
                    break
                i, dist = _first_center(x, sq, elig), np.inf
            else:
                if cand is None:
                    cand, theta = _candidates(key)
                    if not len(cand):
                        break  # nothing eligible left
                i = int(cand[np.argmax(key[cand])])
                if key[i] < theta or key[i] == -np.inf:
                    cand = None  # every candidate fell below the rest: rebuild the set
                    continue
                if stamp[i] < n_centers:
                    _refresh(x, sq, u, stamp, key, w, centers, c64, n_centers, cand, i)
                    continue
                dist = float(np.sqrt(u[i]))
            picks.append(i)
            dists.append(dist)
            centers[n_centers] = i
            c64[n_centers] = x[i]
            n_centers += 1
            elig[i] = False
            if members is not None and grp[i] >= 0:
                elig[members[grp[i]]] = False
            if n_centers == 1 and not len(init):  # the first center: one full pass
                u = sq_dists(x, sq, np.arange(n), [i])[:, 0]
                stamp[:] = 1
                key = np.where(elig, w * np.sqrt(u), -np.inf)
                cand = None
            else:
                u[i] = 0.0
                stamp[i] = n_centers
                key[i] = -np.inf
                if members is not None and grp[i] >= 0:
                    key[members[grp[i]]] = -np.inf
            if len(picks) % every == 0:
                prog(len(picks) / max(budget, 1), f"picked {len(picks):,} of {budget:,}")
    return np.asarray(picks, np.int64), np.asarray(dists, np.float64)


def _candidates(key: np.ndarray) -> tuple[np.ndarray, float]:
    """The rows whose key is at least the CANDIDATE_SET-th largest (ties included), in row
    order, and that threshold. Keys only decrease, so every other row stays below the
    threshold for good: while the best up-to-date key in the set is at least the threshold,
    it is the best of all rows (and the lowest row among equals, as np.argmax), and the set
    is rebuilt only when it is not. Rows with key -inf (not eligible) are never candidates."""
    m = min(CANDIDATE_SET, len(key))
    theta = float(np.partition(key, len(key) - m)[len(key) - m]) if m else -np.inf
    if theta == -np.inf:
        return np.flatnonzero(key > -np.inf), -np.inf
    return np.flatnonzero(key >= theta), theta


def _group_members(grp: np.ndarray) -> dict[int, np.ndarray]:
    """group number -> its rows."""
    rows = np.flatnonzero(grp >= 0)
    order = rows[np.argsort(grp[rows], kind="stable")]
    cuts = np.flatnonzero(np.diff(grp[order])) + 1
    return {int(grp[part[0]]): part for part in np.split(order, cuts) if len(part)}


def _refresh(x, sq, u, stamp, key, w, centers, c64, n_centers, cand, top) -> None:
    """Bring ``top`` and the REFRESH_BATCH largest stale bounds of ``cand`` up to date with
    the centers each has not seen (rows grouped by how many they have seen, so no distance
    is computed twice)."""
    m = min(REFRESH_BATCH, len(cand))
    rows = cand[np.argpartition(-key[cand], m - 1)[:m]] if m < len(cand) else cand
    rows = rows[(stamp[rows] < n_centers) & (key[rows] > -np.inf)]
    if top not in rows:
        rows = np.append(rows, top)
    st = stamp[rows]
    xr = x[rows].astype(np.float64)
    csq = sq[centers[:n_centers]]
    for s in np.unique(st):
        j = np.flatnonzero(st == s)
        d = sq[rows[j], None] + csq[None, s:] - 2.0 * (xr[j] @ c64[s:n_centers].T)
        u[rows[j]] = np.minimum(u[rows[j]], np.maximum(d, 0.0).min(1))
    stamp[rows] = n_centers
    key[rows] = w[rows] * np.sqrt(u[rows])


__all__ = ["kcenter_greedy", "kcenter_greedy_plain", "sq_dists", "sq_norms"]
