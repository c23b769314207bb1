"""Small writers of the label formats, used by the tests to build datasets in tmp_path.

Every writer takes the same ``spec``::

    {"images": [{"file_name": "a.jpg", "width": 64, "height": 48, "split": "train"}, ...],
     "categories": ["cat", "dog"],
     "annotations": [{"file_name": "a.jpg", "label": "cat", "bbox": [x, y, w, h],
                      "annotator": "alice"}, ...]}

``bbox`` is COCO xywh in pixels (None for an image-level label). Writers only write what the
format can hold (VOC and YOLO: one annotator, boxes only).
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image


def make_image(path: Path, width: int, height: int, *, seed: int = 0) -> Path:
    """A small real image file (JPEG or PNG by suffix) with random pixels."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def make_images(root: Path, spec: dict, *, prefix: str = "") -> None:
    for i, im in enumerate(spec["images"]):
        make_image(root / prefix / im["file_name"], im["width"], im["height"], seed=i)


def annotators(spec: dict) -> list[str]:
    return sorted({a.get("annotator", "annotator") for a in spec["annotations"]})


def only(spec: dict, annotator: str) -> dict:
    """The spec restricted to one annotator's labels."""
    return {**spec, "annotations": [a for a in spec["annotations"]
                                    if a.get("annotator", "annotator") == annotator]}


# ----------------------------------------------------------------------------- COCO
def coco_doc(spec: dict, annotator: str | None = None) -> dict:
    fid = {im["file_name"]: i + 1 for i, im in enumerate(spec["images"])}
    cid = {c: i + 1 for i, c in enumerate(spec["categories"])}
    anns = [a for a in spec["annotations"]
            if annotator is None or a.get("annotator", "annotator") == annotator]
    return {
        "images": [{"id": fid[im["file_name"]], "file_name": im["file_name"],
                    "width": im["width"], "height": im["height"],
                    **({"split": im["split"]} if im.get("split") else {})}
                   for im in spec["images"]],
        "categories": [{"id": cid[c], "name": c} for c in spec["categories"]],
        "annotations": [{"id": k + 1, "image_id": fid[a["file_name"]],
                         "category_id": cid[a["label"]], "iscrowd": 0,
                         **({} if a["bbox"] is None else {  # image-level label: no bbox
                             "bbox": list(a["bbox"]), "area": a["bbox"][2] * a["bbox"][3]})}
                        for k, a in enumerate(anns)],
    }


def write_coco(folder: Path, spec: dict) -> Path:
    """``folder/annotations/<annotator>.json`` per annotator (one file when there is one)."""
    d = folder / "annotations"
    d.mkdir(parents=True, exist_ok=True)
    names = annotators(spec)
    if len(names) <= 1:
        (d / "instances.json").write_text(json.dumps(coco_doc(spec)))
    else:
        for n in names:
            (d / f"{n}.json").write_text(json.dumps(coco_doc(spec, n)))
    return folder


# ----------------------------------------------------------------------------- VOC
def write_voc(folder: Path, spec: dict) -> Path:
    """Annotations/*.xml, JPEGImages/ (not written), ImageSets/Main/<split>.txt.

    VOC is 1-based inclusive: xmin = x + 1, xmax = x + w (inverse of the reader)."""
    (folder / "Annotations").mkdir(parents=True, exist_ok=True)
    (folder / "JPEGImages").mkdir(exist_ok=True)
    sets: dict[str, list[str]] = {}
    for im in spec["images"]:
        stem = Path(im["file_name"]).stem
        objs = []
        for a in spec["annotations"]:
            if a["file_name"] != im["file_name"] or a["bbox"] is None:
                continue
            x, y, w, h = a["bbox"]
            objs.append(
                f"<object><name>{a['label']}</name><pose>Unspecified</pose>"
                f"<truncated>{a.get('truncated', 0)}</truncated>"
                f"<difficult>{a.get('difficult', 0)}</difficult>"
                f"<bndbox><xmin>{x + 1:g}</xmin><ymin>{y + 1:g}</ymin>"
                f"<xmax>{x + w:g}</xmax><ymax>{y + h:g}</ymax></bndbox></object>")
        xml = (f"<annotation><folder>JPEGImages</folder><filename>{im['file_name']}</filename>"
               f"<size><width>{im['width']}</width><height>{im['height']}</height>"
               f"<depth>3</depth></size>{''.join(objs)}</annotation>")
        (folder / "Annotations" / f"{stem}.xml").write_text(xml)
        if im.get("split"):
            sets.setdefault(im["split"], []).append(stem)
    if sets:
        (folder / "ImageSets" / "Main").mkdir(parents=True)
        for split, stems in sets.items():
            (folder / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return folder


# ----------------------------------------------------------------------------- YOLO
def write_yolo(folder: Path, spec: dict, *, yaml: bool = True, names_as_dict: bool = False,
               empty_label_files: bool = False) -> Path:
    """images/<split>/ (real image files), labels/<split>/*.txt, data.yaml.

    Images with no box get no label file unless ``empty_label_files``."""
    cls = {c: i for i, c in enumerate(spec["categories"])}
    splits = set()
    for i, im in enumerate(spec["images"]):
        split = im.get("split") or "train"
        splits.add(split)
        make_image(folder / "images" / split / im["file_name"], im["width"], im["height"],
                   seed=i)
        lines = []
        for a in spec["annotations"]:
            if a["file_name"] != im["file_name"] or a["bbox"] is None:
                continue
            x, y, w, h = a["bbox"]
            W, H = im["width"], im["height"]
            lines.append(f"{cls[a['label']]} {(x + w / 2) / W:.8f} {(y + h / 2) / H:.8f} "
                         f"{w / W:.8f} {h / H:.8f}")
        lp = folder / "labels" / split / (Path(im["file_name"]).stem + ".txt")
        if lines or empty_label_files:
            lp.parent.mkdir(parents=True, exist_ok=True)
            lp.write_text("\n".join(lines) + ("\n" if lines else ""))
    if yaml:
        names = ({i: c for c, i in cls.items()} if names_as_dict else list(spec["categories"]))
        import yaml as pyyaml

        cfg = {"path": ".", **{s: f"images/{s}" for s in sorted(splits)}, "names": names}
        (folder / "data.yaml").write_text(pyyaml.safe_dump(cfg))
    return folder


# ----------------------------------------------------------------------------- Label Studio
def labelstudio_tasks(spec: dict, *, users: dict[str, int] | None = None,
                      file_prefix: str = "/data/local-files/?d=") -> list[dict]:
    names = annotators(spec)
    users = users or {n: i + 1 for i, n in enumerate(names)}
    tasks = []
    for t, im in enumerate(spec["images"]):
        W, H = im["width"], im["height"]
        anns = []
        for n in names:
            result = []
            for k, a in enumerate(spec["annotations"]):
                if a["file_name"] != im["file_name"] or a.get("annotator", "annotator") != n:
                    continue
                if a["bbox"] is None:
                    result.append({"id": f"r{k}", "type": "choices", "from_name": "choice",
                                   "to_name": "image", "value": {"choices": [a["label"]]}})
                    continue
                x, y, w, h = a["bbox"]
                result.append({
                    "id": f"r{k}", "type": "rectanglelabels", "from_name": "label",
                    "to_name": "image", "original_width": W, "original_height": H,
                    "image_rotation": 0,
                    "value": {"x": x / W * 100, "y": y / H * 100, "width": w / W * 100,
                              "height": h / H * 100, "rotation": 0,
                              "rectanglelabels": [a["label"]]}})
            anns.append({"id": 100 * t + users[n], "completed_by": {"id": users[n], "email": n},
                         "was_cancelled": False, "result": result})
        data = {"image": file_prefix + im["file_name"]}
        if im.get("split"):
            data["split"] = im["split"]
        tasks.append({"id": t + 1, "data": data, "annotations": anns, "predictions": []})
    return tasks


def write_labelstudio(folder: Path, spec: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "export.json"
    p.write_text(json.dumps(labelstudio_tasks(spec)))
    return p


# ----------------------------------------------------------------------------- CVAT
def cvat_xml(spec: dict, *, owner: str | None = None, subset: str | None = None) -> str:
    labels = "".join(f"<label><name>{c}</name><type>any</type></label>"
                     for c in spec["categories"])
    meta = "<meta><task><id>1</id><name>t</name>"
    if subset:
        meta += f"<subset>{subset}</subset>"
    if owner:
        meta += f"<owner><username>{owner}</username><email>{owner}@x</email></owner>"
    meta += f"<labels>{labels}</labels></task></meta>"
    imgs = []
    for i, im in enumerate(spec["images"]):
        shapes = []
        for a in spec["annotations"]:
            if a["file_name"] != im["file_name"]:
                continue
            if a["bbox"] is None:
                shapes.append(f"<tag label={quoteattr(a['label'])} source=\"manual\"/>")
                continue
            x, y, w, h = a["bbox"]
            shapes.append(f"<box label={quoteattr(a['label'])} source=\"manual\" "
                          f"occluded=\"{a.get('occluded', 0)}\" xtl=\"{x:.2f}\" "
                          f"ytl=\"{y:.2f}\" xbr=\"{x + w:.2f}\" ybr=\"{y + h:.2f}\" "
                          "z_order=\"0\"></box>")
        sub = f' subset="{im["split"]}"' if im.get("split") else ""
        imgs.append(f"<image id=\"{i}\" name={quoteattr(im['file_name'])} "
                    f"width=\"{im['width']}\" height=\"{im['height']}\"{sub}>"
                    + "".join(shapes) + "</image>")
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<annotations><version>1.1</version>"
            + meta + "".join(imgs) + "</annotations>")


def write_cvat(folder: Path, spec: dict) -> Path:
    """``folder/annotations/<annotator>.xml`` per annotator."""
    d = folder / "annotations"
    d.mkdir(parents=True, exist_ok=True)
    for n in annotators(spec) or ["annotator"]:
        (d / f"{n}.xml").write_text(cvat_xml(only(spec, n)))
    return folder
