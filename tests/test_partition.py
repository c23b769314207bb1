import numpy as np
import pandas as pd
import pytest

import qa
from qa.dataset import Dataset
from qa.partition import (
    export_split,
    iterative_stratification,
    parse_fractions,
    propose_split,
)
from tests.conftest import SAMPLE


# ---------------------------------------------------------------- the algorithm
def test_a_rare_label_is_shared_out_and_sizes_follow_the_fractions():
    # 20 examples: 18 with label 0, 2 with the rare label 1 (the paper processes it first)
    y = np.zeros((20, 2))
    y[:18, 0] = 1
    y[18:, 1] = 1
    out = iterative_stratification(y, [0.5, 0.5], seed=0)
    assert np.bincount(out).tolist() == [10, 10]
    assert sorted(out[18:].tolist()) == [0, 1]  # one rare example in each half


def test_placed_examples_count_towards_the_wants():
    y = np.ones((10, 1))
    placed = np.array([0, 0, 0, 0, 0, -1, -1, -1, -1, -1])
    out = iterative_stratification(y, [0.5, 0.5], assigned=placed)
    assert out[:5].tolist() == [0] * 5 and out[5:].tolist() == [1] * 5


def _label_distribution(y, assign, r):
    """Sechidis et al.'s LD measure: mean over labels of the mean over subsets of
    |p_j/(1-p_j) - p/(1-p)|, p the label's share of the examples (lower = better)."""
    out = []
    for k in range(y.shape[1]):
        p = y[:, k].mean()
        d = []
        for j in range(len(r)):
            m = assign == j
            pj = y[m, k].mean() if m.any() else 0
            d.append(abs(pj / max(1 - pj, 1e-9) - p / max(1 - p, 1e-9)))
        out.append(np.mean(d))
    return float(np.mean(out))


def test_label_distribution_beats_a_random_split_on_multilabel_data():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 8)) < np.array([0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01])
         ).astype(float)
    r = [0.6, 0.2, 0.2]
    strat = [_label_distribution(y, iterative_stratification(y, r, seed=s), r)
             for s in range(10)]
    rand = [_label_distribution(y, rng.choice(3, 300, p=r), r) for _ in range(10)]
    assert np.mean(strat) < 0.5 * np.mean(rand)


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="fractions must be positive and sum to 1"):
        iterative_stratification(np.ones((3, 1)), [0.5, 0.6])
    with pytest.raises(ValueError, match="give 2 or 3 numbers"):
        parse_fractions(".5,.2,.2,.1")
    assert parse_fractions(".8,.1,.1") == {"train": .8, "val": .1, "test": .1}
    assert parse_fractions(".8,.2") == {"train": .8, "test": .2}
    assert parse_fractions("train=.7,dev=.3") == {"train": .7, "dev": .3}


# ---------------------------------------------------------------- propose_split
class _Dups:
    """What propose_split reads of a DuplicatesResult: clusters and pairs."""

    def __init__(self, groups):
        rows = [(g, i) for g, ids in groups.items() for i in ids]
        self.clusters = pd.DataFrame(rows, columns=["cluster_id", "image_id"])
        pairs = [(a, b) for ids in groups.values() for a in ids for b in ids if a < b]
        self.pairs = pd.DataFrame(pairs, columns=["image_id_a", "image_id_b"]).assign(
            method="phash")


def _ds(n=40, splits=None, seed=0):
    rng = np.random.default_rng(seed)
    anns = [{"ann_id": 100 * i + k, "image_id": i, "category_id": int(c), "x": 1.0, "y": 1.0,
             "w": 5.0, "h": 5.0}
            for i in range(1, n + 1) for k, c in enumerate(rng.choice([1, 1, 2, 2, 3], 2))]
    images = pd.DataFrame({"image_id": np.arange(1, n + 1),
                           "file_name": [f"{i}.jpg" for i in range(1, n + 1)],
                           "split": splits if splits is not None else [None] * n})
    cats = pd.DataFrame({"category_id": [1, 2, 3], "name": ["a", "b", "c"]})
    return Dataset(images=images, categories=cats, annotations=pd.DataFrame(anns))


def test_duplicate_groups_land_in_one_split_and_fractions_hold():
    dups = _Dups({1: [1, 2, 3], 2: [10, 30]})
    prop = propose_split(_ds(), {"train": .5, "test": .5}, duplicates=dups)
    a = prop.assignment.set_index("image_id")["split"]
    assert a[1] == a[2] == a[3] and a[10] == a[30]
    assert prop.after["n_cross_split_pairs"] == 0
    assert abs((a == "train").sum() - 20) <= 2
    assert prop.after["max_share_deviation"] <= 0.02 + 1e-9


def test_keep_existing_moves_only_the_leaking_copies():
    splits = ["train"] * 30 + ["test"] * 10
    dups = _Dups({1: [1, 35], 2: [36, 37]})  # 1 (train) ~ 35 (test) leak; 36 ~ 37 both test
    prop = propose_split(_ds(splits=splits), duplicates=dups, keep_existing=True, tolerance=0.99)
    assert prop.fractions == {"train": 0.75, "test": 0.25}
    assert prop.before["n_cross_split_pairs"] == 1 and prop.after["n_cross_split_pairs"] == 0
    moved = prop.moved
    assert moved["image_id"].tolist() == [35]
    assert moved["reason"].iloc[0] == ("moved test -> train: a near-duplicate of #1 (train); "
                                       "copies stay in one split")
    kept = prop.assignment.set_index("image_id")
    assert kept.at[36, "reason"] == "kept in test"


def test_keep_existing_places_images_without_a_split_and_refuses_unknown_splits():
    splits = ["train"] * 20 + ["test"] * 10 + [None] * 10
    prop = propose_split(_ds(splits=splits), {"train": .6, "test": .4}, keep_existing=True,
                         tolerance=0.99)
    a = prop.assignment
    assert prop.n_moved == 0 and a["split"].notna().all()
    assert (a["split"] == "test").sum() == 16  # 40 % of 40: 10 kept + 6 of the new
    assert a["reason"].iloc[-1].startswith("had no split: stratified into ")
    with pytest.raises(ValueError, match=r"split\(s\) \['test'\] that the fractions"):
        propose_split(_ds(splits=splits), {"train": .5, "val": .5}, keep_existing=True)


def test_export_split_writes_a_csv_outside_the_dataset(tmp_path_factory, coco_dir):
    ds = qa.load(coco_dir)
    prop = propose_split(ds, {"train": .67, "test": .33})
    with pytest.raises(ValueError, match="inside the dataset"):
        export_split(ds, prop, coco_dir / "split.csv")
    path = export_split(ds, prop, tmp_path_factory.mktemp("out") / "split.csv")
    df = pd.read_csv(path)
    assert df.columns.tolist() == ["image_id", "file_name", "split", "old_split", "moved",
                                   "reason"]
    assert len(df) == 3 and set(df["split"]) <= {"train", "test"}


# ---------------------------------------------------------------- on the sample
@pytest.fixture(scope="module")
def sample_and_duplicates():
    from qa.duplicates import compute_duplicates
    from qa.imagestats import compute_image_stats

    ds = qa.load(SAMPLE)
    return ds, compute_duplicates(ds, stats=compute_image_stats(ds))


@pytest.mark.parametrize("keep", [False, True])
def test_sample_split_has_no_leakage_and_the_class_mix_of_the_whole(sample_and_duplicates,
                                                                     keep):
    ds, dups = sample_and_duplicates
    assert dups.metrics()["n_cross_split_pairs"] == 6  # the planted leakage today
    prop = propose_split(ds, duplicates=dups, keep_existing=keep)
    assert prop.before["n_cross_split_pairs"] == 6 and prop.after["n_cross_split_pairs"] == 0
    # recount independently: no pair of copies in two splits
    split = prop.assignment.set_index("image_id")["split"]
    p = dups.pairs
    assert (split[p["image_id_a"]].to_numpy() == split[p["image_id_b"]].to_numpy()).all()
    # every split's class shares within 2 points of the whole, counted here from the labels
    a = ds.annotations[ds.annotations["annotator"] == prop.annotator]
    whole = a["category_id"].value_counts(normalize=True)
    for s, grp in a.groupby(a["image_id"].map(split)):
        share = grp["category_id"].value_counts(normalize=True).reindex(whole.index,
                                                                        fill_value=0)
        assert (share - whole).abs().max() <= 0.02, (s, (share - whole).abs().max())
    if keep:  # minimal moves: the 6 leaking copies and a few for the mix
        assert prop.n_moved <= 12
        assert set(prop.sizes["before"]) == {202, 48, 50}
    else:
        assert prop.sizes["after"].iloc[0] == 240 and prop.sizes["after"].min() >= 28
