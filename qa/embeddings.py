"""Image embeddings: the vectors that outliers, near-duplicates and the report read.

The embedders themselves (open_clip and the offline fallback, ``embed_images`` /
``embed_objects``) are built by the embeddings issue; this module fixes the shape they return,
so the analyses that consume it can be written against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qa.dataset import IMAGE_ID


def _no_failures() -> pd.DataFrame:
    return pd.DataFrame({IMAGE_ID: pd.Series(dtype="int64"), "file_name": pd.Series(dtype=object),
                         "reason": pd.Series(dtype=object)})


@dataclass(frozen=True, eq=False)
class Embeddings:
    """``vectors``: (n, d) float32, L2-normalised, row i belongs to ``image_ids[i]`` (and to
    ``ann_ids[i]`` for object embeddings). ``model_id`` names the architecture, the weights and
    the preprocessing version (e.g. ``open_clip/ViT-B-32/laion2b_s34b_b79k/pp1``);
    ``is_clip`` says whether text search is possible. ``failed``: the images that could not be
    embedded (image_id, file_name, reason). ``n_computed`` / ``n_cached``: how many vectors
    this call computed and how many came from the store."""

    vectors: np.ndarray
    image_ids: np.ndarray
    model_id: str
    is_clip: bool = False
    failed: pd.DataFrame = field(default_factory=_no_failures)
    ann_ids: np.ndarray | None = None
    n_computed: int = 0
    n_cached: int = 0

    def __post_init__(self) -> None:
        v = np.asarray(self.vectors, dtype=np.float32)
        ids = np.asarray(self.image_ids, dtype=np.int64)
        if v.ndim != 2 or len(v) != len(ids):
            raise ValueError(f"vectors must be (n, d) with one row per image id: got {v.shape} "
                             f"for {len(ids)} image ids")
        object.__setattr__(self, "vectors", v)
        object.__setattr__(self, "image_ids", ids)
        if self.ann_ids is not None:
            object.__setattr__(self, "ann_ids", np.asarray(self.ann_ids, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])
