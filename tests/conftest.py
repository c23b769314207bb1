"""Shared fixtures: tiny datasets written in tmp_path with fixed seeds. Tests run offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The app's warm-up computes every analysis in a background thread after a load; in-process
# AppTest tests would leave those threads competing with the tests after them. Tests that
# check it (and the real-browser servers) turn it on.
os.environ.setdefault("DATASET_QA_WARM_UP", "0")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def write_jpeg(path: Path, size=(64, 48), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=85)
    return path


def coco_doc(images, annotations, categories=((1, "cat"), (2, "dog"))):
    return {
        "images": [dict(id=i, file_name=f, width=w, height=h) for i, f, w, h in images],
        "annotations": [dict(id=a, image_id=i, category_id=c, bbox=list(b), iscrowd=0,
                             area=float(b[2] * b[3])) for a, i, c, b in annotations],
        "categories": [dict(id=c, name=n, supercategory="animal") for c, n in categories],
    }


@pytest.fixture
def coco_dir(tmp_path):
    """A COCO file over three real images: a.jpg (2 boxes), b.jpg (1 box), c.jpg (empty)."""
    for k, name in enumerate(["a.jpg", "b.jpg", "c.jpg"]):
        write_jpeg(tmp_path / "images" / name, size=(64, 48), seed=k)
    doc = coco_doc(
        [(1, "a.jpg", 64, 48), (2, "b.jpg", 64, 48), (3, "c.jpg", 64, 48)],
        [(10, 1, 1, (1, 2, 20, 10)), (11, 1, 2, (30, 5, 10, 30)), (12, 2, 1, (0, 0, 64, 48))],
    )
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances.json").write_text(json.dumps(doc))
    return tmp_path


@pytest.fixture(autouse=True, scope="session")
def _private_cache_and_workspace(tmp_path_factory):
    """Tests never touch the user's ~/.cache/dataset-qa or ~/.local/share/dataset-qa: the
    store and the workspace live in a session folder (subprocesses inherit the variables).
    A test that needs its own empty store sets DATASET_QA_CACHE again with monkeypatch."""
    from qa.store import CACHE_ENV, HOME_ENV

    base = tmp_path_factory.mktemp("qa-home")
    old = {k: os.environ.get(k) for k in (CACHE_ENV, HOME_ENV)}
    os.environ[CACHE_ENV] = str(base / "cache")
    os.environ[HOME_ENV] = str(base / "home")
    yield base
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
