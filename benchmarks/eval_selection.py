"""Does choosing what to label help? A simulated active-learning loop on real data.

    PYTHONPATH=. python benchmarks/eval_selection.py [--seeds 10] [--plot docs/selection_curves.png]

Data: scikit-learn's bundled ``load_digits`` (1,797 real 8x8 handwritten digits, 10 classes;
nobody here made them). Per seed: a stratified held-out test set of 597 digits, a pool of
1,200; 20 random pool digits start labelled. Each round a logistic regression is trained on
the labelled digits, its class probabilities on the pool become the dataset's predictions,
and :func:`qa.selection.select_for_labelling` (the product's own function, on a
:class:`qa.Dataset` built from the digits, with the pixels as embeddings) picks the next 20
to "label" (their true class is revealed). Accuracy on the test set is recorded at 20, 40,
..., 400 labels.

Printed: the mean learning curve of each strategy over ``--seeds`` seeds, and the label
saving of each against random: the fewest labels at which the strategy's mean accuracy
reaches random's accuracy at 400 labels (``saving = 1 - that / 400``). The project's default
(``strategy="auto"``, which is ``hybrid`` when predictions and embeddings exist) must save at
least 30 %.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from qa.dataset import Dataset
from qa.embeddings import Embeddings
from qa.selection import select_for_labelling

START, STEP, MAX_LABELS = 20, 20, 400
TEST_SIZE = 597
STRATEGIES = ("random", "uncertainty", "kcenter", "hybrid", "hybrid_kcenter", "auto")
TITLES = {"random": "random", "uncertainty": "entropy", "kcenter": "k-center",
          "hybrid": "hybrid (clusters)", "hybrid_kcenter": "hybrid (weighted k-center)",
          "auto": "default (auto)"}


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float64), d.target.astype(np.int64)  # pixel values 0..16


def make_dataset(n: int, y: np.ndarray, labelled: np.ndarray, probs: np.ndarray | None,
                 pool: np.ndarray) -> Dataset:
    """The digits as a classification Dataset: image ids 1..n, the labelled digits' classes
    as annotations, the model's probabilities on the pool as predictions."""
    images = pd.DataFrame({"image_id": np.arange(1, n + 1),
                           "file_name": [f"digit_{i}.png" for i in range(n)],
                           "width": 8, "height": 8})
    cats = pd.DataFrame({"category_id": np.arange(1, 11), "name": [str(k) for k in range(10)]})
    anns = pd.DataFrame({"ann_id": labelled + 1, "image_id": labelled + 1,
                         "category_id": y[labelled] + 1, "annotator": "truth"})
    preds = None
    if probs is not None:
        k = probs.shape[1]
        preds = pd.DataFrame({"pred_id": np.arange(len(pool) * k),
                              "image_id": np.repeat(pool + 1, k),
                              "category_id": np.tile(np.arange(1, k + 1), len(pool)),
                              "score": probs.ravel(), "model": "logreg"})
    return Dataset(images=images, categories=cats, annotations=anns, predictions=preds,
                   format="digits", name="digits")


def run_one(x, y, strategy: str, seed: int) -> list[float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    pool_all, test = train_test_split(idx, test_size=TEST_SIZE, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    labelled = np.sort(rng.choice(pool_all, START, replace=False))
    emb = Embeddings(vectors=x.astype(np.float32), image_ids=idx + 1, model_id="digit-pixels")
    acc = []
    while True:
        clf = LogisticRegression(max_iter=2000).fit(x[labelled], y[labelled])
        acc.append(float((clf.predict(x[test]) == y[test]).mean()))
        if len(labelled) >= MAX_LABELS:
            return acc
        pool = np.setdiff1d(pool_all, labelled)
        probs = np.zeros((len(pool), 10))
        probs[:, clf.classes_] = clf.predict_proba(x[pool])  # classes not seen yet: 0
        ds = make_dataset(len(y), y, labelled, probs, pool)
        res = select_for_labelling(ds, STEP, strategy=strategy, pool=pool + 1,
                                   labelled=labelled + 1, embeddings=emb, seed=seed,
                                   stratify="none")
        labelled = np.sort(np.r_[labelled, np.asarray(res.picked_ids) - 1])


def label_saving(curves: dict[str, np.ndarray], grid: np.ndarray) -> dict[str, tuple]:
    """strategy -> (labels needed to reach random's final mean accuracy, saving)."""
    target = curves["random"].mean(0)[-1]
    out = {}
    for s, c in curves.items():
        m = c.mean(0)
        hit = np.flatnonzero(m >= target - 1e-12)
        n = int(grid[hit[0]]) if len(hit) else None
        out[s] = (n, None if n is None else 1 - n / grid[-1])
    return out


def plot(curves, grid, saving, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=130)
    target = curves["random"].mean(0)[-1]
    for s, c in curves.items():
        m, sd = c.mean(0), c.std(0)
        n, sv = saving[s]
        label = TITLES[s] + ("" if s == "random" or sv is None else
                             f": random's final accuracy at {n} labels ({sv:.0%} fewer)")
        ax.plot(grid, m, label=label, lw=2.2 if s in ("auto", "random") else 1.3,
                ls="--" if s == "random" else "-")
        ax.fill_between(grid, m - sd, m + sd, alpha=0.08)
    ax.axhline(target, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("labelled digits")
    ax.set_ylabel("test accuracy (mean of %d seeds, band = 1 sd)" % len(next(iter(
        curves.values()))))
    ax.set_title("Active learning on load_digits (logistic regression, rounds of 20)")
    ax.set_ylim(max(0.5, min(c.mean(0)[0] for c in curves.values()) - 0.02), 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--plot", default=None, help="save the learning curves as a PNG here")
    args = ap.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().split()[:3]}")
    x, y = digits()
    grid = np.arange(START, MAX_LABELS + 1, STEP)
    curves = {}
    warnings.filterwarnings("ignore", category=UserWarning)
    for s in args.strategies.split(","):
        t = time.perf_counter()
        curves[s] = np.array([run_one(x, y, s, seed) for seed in range(args.seeds)])
        print(f"{s}: {time.perf_counter() - t:.0f} s", flush=True)
    table = pd.DataFrame({TITLES[s]: c.mean(0) for s, c in curves.items()}, index=grid)
    table.index.name = "labels"
    print("\nMean test accuracy (%d seeds)" % args.seeds)
    print(table.iloc[::2].to_string(float_format="%.3f"))
    saving = label_saving(curves, grid)
    target = curves["random"].mean(0)[-1]
    print(f"\nrandom's accuracy at {grid[-1]} labels: {target:.4f}")
    for s, (n, sv) in saving.items():
        if s != "random":
            print(f"  {TITLES[s]:28s} reaches it at {n} labels: "
                  + ("never" if n is None else f"{sv:.0%} fewer labels"))
    if "auto" in saving:
        ok = saving["auto"][1] is not None and saving["auto"][1] >= 0.30
        print(f"\ndefault saves >= 30 % of the labels: {'YES' if ok else 'NO'}")
    if args.plot:
        plot(curves, grid, saving, args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
