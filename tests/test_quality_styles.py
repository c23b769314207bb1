"""Quality flags find defects, not styles (issue 26): on generated labelled pictures, a pale
specimen on a blown white background is not overexposed while an object blown through is; a
black object on a lit scene is not dark while a picture with nothing lit is; a sharp object
on a plain wall is not low-information while a labelled blank frame is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    NAME,
    SPLIT,
    WIDTH,
    Dataset,
)
from qa.quality import compute_quality

S = 160
BOX = (40, 40, 80, 80)  # x, y, w, h of the one object in every picture


def scene(seed: int) -> np.ndarray:
    """An ordinary lit picture: textured mid greys and colour, a textured object in BOX."""
    rng = np.random.default_rng(seed)
    a = rng.integers(60, 200, size=(S, S, 3)).astype(np.uint8)
    for _ in range(10):
        x, y = rng.integers(0, S - 20, 2)
        a[y:y + 20, x:x + 20] = rng.integers(20, 240, 3)
    return a


def specimen(seed: int) -> np.ndarray:
    """A pale textured moth on a blown white background (the box takes in white around it)."""
    rng = np.random.default_rng(seed)
    a = np.full((S, S, 3), 255, np.uint8)
    a[55:105, 55:105] = rng.integers(170, 235, size=(50, 50, 3))
    a[78:82, 55:105] = 60  # its body
    return a


def blown(seed: int) -> np.ndarray:
    """An ordinary picture 2-3 stops over: the object blown through, much of the rest too."""
    a = scene(seed).astype(int) * 3
    return np.clip(a, 0, 255).astype(np.uint8)


def black_piece(seed: int) -> np.ndarray:
    a = scene(seed)
    a[50:110, 50:110] = np.random.default_rng(seed).integers(0, 12, size=(60, 60, 3))
    return a


def night(seed: int) -> np.ndarray:
    return (scene(seed) * 0.15).astype(np.uint8)


def bug_on_wall(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = (np.full((S, S, 3), (205, 195, 175)) + rng.normal(0, 1.5, (S, S, 3)))
    a[70:90:3, 72:92] = 30  # a small sharp striped bug: under 1 % of the picture, so
    a[70:90, 81] = 20  # the range of grey (p98 - p02) is the wall's
    return np.clip(a, 0, 255).astype(np.uint8)


def blank(seed: int) -> np.ndarray:
    return np.full((S, S, 3), 140, np.uint8)


# the bug's own box, tight around it
TIGHT = {"bug_on_wall.png": (70, 68, 24, 24)}
ODD = {"specimen": specimen, "blown": blown, "black_piece": black_piece, "night": night,
       "bug_on_wall": bug_on_wall, "blank": blank}


@pytest.fixture(scope="module")
def flags(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("styles")
    files = {f"ok{k}.png": scene(k) for k in range(24)}
    files |= {f"{name}.png": make(100 + i) for i, (name, make) in enumerate(ODD.items())}
    for name, arr in files.items():
        Image.fromarray(arr).save(tmp / name)
    names = list(files)
    n = len(names)
    im = pd.DataFrame({IMAGE_ID: range(1, n + 1), FILE_NAME: names, WIDTH: [S] * n,
                       HEIGHT: [S] * n, SPLIT: ["train"] * n})
    boxes = np.array([TIGHT.get(f, BOX) for f in names], float)
    an = pd.DataFrame({ANN_ID: range(1, n + 1), IMAGE_ID: range(1, n + 1), CATEGORY_ID: 1,
                       "x": boxes[:, 0], "y": boxes[:, 1], "w": boxes[:, 2],
                       "h": boxes[:, 3], ANNOTATOR: "a"})
    ds = Dataset(images=im, categories=pd.DataFrame({CATEGORY_ID: [1], NAME: ["bug"]}),
                 annotations=an, root=tmp, name="styles")
    return compute_quality(ds).per_image.set_index("file_name")


def test_ordinary_pictures_are_not_flagged(flags):
    assert flags.loc[[f"ok{k}.png" for k in range(24)], "n_flags"].sum() == 0


def test_a_pale_specimen_on_white_is_not_overexposed_but_an_object_blown_through_is(flags):
    assert flags.loc["specimen.png", "clip_bright"] > 0.5  # the background is blown ...
    assert not flags.loc["specimen.png", "is_overexposed"]  # ... around the object, not in it
    assert flags.loc["blown.png", "obj_core_bright"] >= 0.3
    assert flags.loc["blown.png", "is_overexposed"]


def test_a_black_object_on_a_lit_scene_is_not_dark_but_an_unlit_picture_is(flags):
    assert not flags.loc["black_piece.png", "is_dark"]
    assert flags.loc["night.png", "is_dark"]


def test_a_sharp_object_on_a_plain_wall_is_not_low_information_but_a_blank_frame_is(flags):
    wall = flags.loc["bug_on_wall.png"]
    assert wall["luma_p98"] - wall["luma_p02"] < 48 and wall["entropy"] < 4  # plain ...
    assert not wall["is_low_information"] and wall["n_flags"] == 0  # ... but a sharp object
    assert flags.loc["blank.png", "is_low_information"]


# ----------------------------------------------------------------- real photos
REAL = Path(__file__).resolve().parent / "data" / "real" / "roboflow_yolo_styles"


def _stops(path: Path, stops: float) -> Image.Image:
    """The photo exposed ``stops`` more (negative: less), in linear light, clipped."""
    a = np.asarray(Image.open(path).convert("RGB")).astype(np.float64) / 255
    lin = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4) * 2.0 ** stops
    lin = np.clip(lin, 0, 1)
    out = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return Image.fromarray(np.round(out * 255).astype(np.uint8))


def test_real_specimen_wall_and_product_shots_are_not_flagged_but_their_misexposed_copies_are(
        tmp_path):
    import shutil

    import qa

    root = tmp_path / "styles"
    shutil.copytree(REAL, root)
    pills = next((root / "train" / "images").glob("suggested-*.jpg"))
    label = root / "train" / "labels" / f"{pills.stem}.txt"
    for name, stops in (("under3", -3), ("over2", 2)):
        _stops(pills, stops).save(pills.parent / f"{name}-pills.jpg", quality=95)
        shutil.copy(label, label.parent / f"{name}-pills.txt")
    per = compute_quality(qa.load(root)).per_image
    per.index = [Path(f).name.split("_")[0].split("-")[0] for f in per["file_name"]]
    exposure = ["is_dark", "is_overexposed", "is_low_information"]
    # a pale moth on white, a bug on a plain wall, pills on white: styles, not defects
    assert not per.loc[["rice", "suggested"], exposure].to_numpy().any(), per[exposure]
    assert per.loc["under3", "is_dark"] and not per.loc["under3", "is_overexposed"]
    assert per.loc["over2", "is_overexposed"] and not per.loc["over2", "is_dark"]
