"""Small datasets of the shapes the sample is not: one annotator and no model (YOLO), two
annotators (consensus undefined), image classification folders, and labels whose image files
are all absent. Each builder writes under ``root`` and returns the path to load."""

from __future__ import annotations

import json

from tests.conftest import coco_doc, write_jpeg


def yolo_one_annotator(root):
    for i in range(6):
        write_jpeg(root / "images" / f"im{i}.jpg", size=(80, 60), seed=i)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"im{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.3\n")
    (root / "data.yaml").write_text("train: images\nnames: [cat, dog]\n")
    return root


def coco_two_annotators(root):
    imgs = [(i, f"{i}.jpg", 64, 48) for i in range(1, 6)]
    for i, f, _, _ in imgs:
        write_jpeg(root / "images" / f, seed=i)
    (root / "annotations").mkdir(parents=True)
    for name, dx in (("ann", 0), ("ben", 3)):
        anns = [(10 * i + k, i, 1 + k, (5 + dx + 20 * k, 5, 15, 20)) for i in range(1, 6)
                for k in range(2)]
        (root / "annotations" / f"{name}.json").write_text(json.dumps(coco_doc(imgs, anns)))
    return root


def classification(root):
    for cls in ("cat", "dog"):
        for i in range(4):
            write_jpeg(root / cls / f"{cls}{i}.jpg", seed=i + (10 if cls == "dog" else 0))
    return root


def no_image_files(root):
    doc = coco_doc([(i, f"{i}.jpg", 64, 48) for i in range(1, 4)],
                   [(i, i, 1, (1, 2, 20, 10)) for i in range(1, 4)])
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.json").write_text(json.dumps(doc))
    return root / "labels.json"


SHAPES = {"yolo_one_annotator": yolo_one_annotator, "coco_two_annotators":
          coco_two_annotators, "classification": classification,
          "no_image_files": no_image_files}
