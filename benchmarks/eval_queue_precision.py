"""How well the disagreement review queue finds the label errors planted in sample_data, with
the model alone and with the crops' second opinion (object embeddings; the first run embeds
the boxes of the default annotator once, about a minute on 2 CPU cores, then they are cached).

Run: ``.venv/bin/python benchmarks/eval_queue_precision.py``. Prints precision at 12, 24 and
48 queue positions and the recall at 48, where an image counts as a hit when PLANTED.json
lists a label error on it (wrong class, shifted box, spurious box or missing box).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import qa
from qa.disagreement import compute_disagreement
from qa.embeddings import embed_objects

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def main() -> None:
    ds = qa.load(SAMPLE, predictions=SAMPLE / "predictions" / "detector.json")
    planted = json.loads((SAMPLE / "PLANTED.json").read_text())
    wrong = {e["image_id"] for e in planted["label_errors"]}
    t = time.perf_counter()
    objects = embed_objects(ds)
    print(f"object embeddings: {len(objects)} boxes of {objects.notes[1].split()[-1]} "
          f"({objects.n_computed} computed, {objects.n_cached} cached) in "
          f"{time.perf_counter() - t:.1f} s with {objects.model_id}")
    print(f"{len(wrong)} images carry a planted label error")
    for name, kw in (("model alone", {}), ("with crops", {"objects": objects})):
        q = compute_disagreement(ds, **kw).queue["image_id"].tolist()
        hits = {k: len(set(q[:k]) & wrong) for k in (12, 24, 48)}
        print(f"{name:12s} queue {len(q):3d} images   precision@12 {hits[12] / 12:.2f}   "
              f"@24 {hits[24] / 24:.2f}   @48 {hits[48] / 48:.2f}   "
              f"recall@48 {hits[48] / len(wrong):.2f}")


if __name__ == "__main__":
    main()
