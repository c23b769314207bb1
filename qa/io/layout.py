"""What a dataset folder holds, and which reader fits it.

:func:`detect_folder` names the format of a folder as users export them (Roboflow's split
folders, the VOC devkit, LabelImg's ``annotations/`` + ``images/``, YOLO, COCO with one JSON
per split ...). When nothing fits, :func:`describe_folder` says what was looked for and what
was found, so the refusal names the closest supported layout and the command to use instead
of blaming something that is not there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from qa.io._common import IMAGE_EXTENSIONS, is_dir, is_file
from qa.io._splits import split_folders

# Roboflow's per-split labels files, and the format each one means.
SPLIT_MARKERS = (
    ("_annotations.coco.json", "coco"),
    ("_annotations.createml.json", "createml"),
    ("_annotations.csv", "csv"),
    ("_classes.csv", "csv"),
    ("_darknet.labels", "yolo"),
)
# How many entries of a folder are looked at to describe it (a 1M-file folder stays fast).
MAX_LISTED = 20_000
# Folders that hold a dataset's images, not a class: a top folder whose only image folder is
# one of these has no labels (it is not a one-class ImageFolder called "images").
IMAGE_FOLDER_NAMES = frozenset({"images", "jpegimages", "imgs", "img", "pictures", "photos",
                                "frames", "data"})


@dataclass
class FolderFacts:
    """Counts of what one folder holds directly (no recursion)."""

    path: Path
    images: int = 0
    files: dict[str, int] = field(default_factory=dict)  # extension -> count
    names: list[str] = field(default_factory=list)  # non-image file names (a few)
    subdirs: list[str] = field(default_factory=list)

    def n(self, *exts: str) -> int:
        return sum(self.files.get(e, 0) for e in exts)


def facts(folder: Path) -> FolderFacts:
    out = FolderFacts(Path(folder))
    try:
        it = os.scandir(folder)
    except OSError:
        return out
    with it:
        for k, e in enumerate(it):
            if k >= MAX_LISTED:
                break
            if e.name.startswith("."):
                continue
            try:
                d = e.is_dir()
            except OSError:
                continue
            if d:
                out.subdirs.append(e.name)
                continue
            ext = os.path.splitext(e.name)[1].lower()
            if ext in IMAGE_EXTENSIONS:
                out.images += 1
            else:
                out.files[ext] = out.files.get(ext, 0) + 1
                if len(out.names) < 12:
                    out.names.append(e.name)
    out.subdirs.sort()
    out.names.sort()
    return out


def _xml_kind(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return None
    if "<annotations" in head:
        return "cvat"
    if "<annotation" in head:
        return "voc"
    return None


def _xml_kinds(folder: Path, limit: int = 20) -> set[str]:
    try:
        xmls = sorted(p for p in folder.glob("*.xml"))[:limit]
    except OSError:
        return set()
    return {k for k in (_xml_kind(x) for x in xmls) if k}


def split_kind(folder: Path) -> str | None:
    """The format of one split folder (``train/``): a Roboflow labels file, VOC XML beside the
    images, YOLO ``images/`` + ``labels/``, or class sub-folders of images."""
    from qa.io import _sniff_json

    for name, fmt in SPLIT_MARKERS:
        if is_file(folder / name):
            return fmt
    if is_dir(folder / "images") and is_dir(folder / "labels"):
        return "yolo"
    kinds = _xml_kinds(folder)
    if "voc" in kinds:
        return "voc"
    for p in sorted(folder.glob("*.json"))[:5]:
        fmt = _sniff_json(p)
        if fmt in ("coco", "createml", "labelstudio"):
            return fmt
    if len(list(folder.glob("*.csv"))) == 1:
        return "csv"
    f = facts(folder)
    if any(facts(folder / d).images for d in f.subdirs[:50]):
        return "imagefolder"
    return None


def split_kinds(top: Path) -> dict[str, tuple[Path, str | None]]:
    """split folder name -> (folder, its format or None)."""
    return {d.name: (d, split_kind(d)) for _, d in split_folders(top)}


def detect_folder(p: Path) -> str | None:
    """The format of a dataset folder, or None when no layout fits (see
    :func:`describe_folder` for the message)."""
    from qa.io import _sniff_json
    from qa.io.yolo import YAML_NAMES, is_darknet

    if any(is_file(p / n) for n in YAML_NAMES):
        return "yolo"
    if is_dir(p / "Annotations"):
        return "voc"
    ann_dir = p / "annotations"
    jsons = (sorted(ann_dir.glob("*.json")) if is_dir(ann_dir) else []) + sorted(p.glob("*.json"))
    for c in jsons:
        fmt = _sniff_json(c)
        if fmt in ("coco", "labelstudio", "createml"):
            return fmt
    splits = split_kinds(p)
    found = {k for _, k in splits.values() if k}
    if len(found) == 1:
        return found.pop()
    if len(found) > 1:
        return None  # mixed: describe_folder says which split holds what
    kinds = (_xml_kinds(ann_dir) if is_dir(ann_dir) else set()) | _xml_kinds(p)
    if "cvat" in kinds:
        return "cvat"
    if "voc" in kinds:  # LabelImg: annotations/*.xml (+ images/), or XML beside the images
        return "voc"
    if is_dir(p / "labels") and is_dir(p / "images"):
        return "yolo"
    if is_darknet(p):  # CVAT "YOLO 1.1" / Roboflow "YOLO Darknet"
        return "yolo"
    if list(p.glob("*.csv")) or list(p.glob("*.tsv")):
        return "csv"
    if splits:  # split folders of bare images: no labels, not class folders either
        return None
    top = facts(p)
    with_images = [d for d in top.subdirs[:200] if facts(p / d).images]
    if with_images and not all(d.lower() in IMAGE_FOLDER_NAMES for d in with_images):
        return "imagefolder"
    return None


def _describe(f: FolderFacts, rel: str) -> str:
    parts = []
    if f.images:
        parts.append(f"{f.images:,} image{'s' if f.images != 1 else ''}")
    for ext, n in sorted(f.files.items(), key=lambda t: -t[1])[:5]:
        if n == 1:
            one = next((x for x in f.names if x.lower().endswith(ext)), None)
            parts.append(f"`{one}`" if one else f"1 {ext or 'extension-less'} file")
        else:
            parts.append(f"{n:,} {ext or 'extension-less'} files")
    if f.subdirs:
        shown = " ".join(f"{d}/" for d in f.subdirs[:8]) + (" ..." if len(f.subdirs) > 8 else "")
        parts.append(f"folders {shown}")
    what = ", ".join(parts) if parts else "nothing"
    return f"`{rel}` holds {what}"


def describe_folder(p: Path) -> str:
    """What the folder holds, in words: the top folder and each sub-folder (a few), e.g.
    "`train/` holds 12 images, `_annotations.coco.json`"."""
    top = facts(p)
    lines = [_describe(top, p.name + "/")]
    for d in top.subdirs[:6]:
        lines.append(_describe(facts(p / d), f"{d}/"))
    return "; ".join(lines)


def closest_layout(p: Path) -> str:
    """A sentence naming the supported layout the folder is closest to, and what to do."""
    top = facts(p)
    here = detect_folder(p)
    if here is not None:
        return (f"The folder reads as {here}: load it with format='auto' (no --format), or "
                f"--format {here}.")
    splits = split_kinds(p)
    if not splits:
        inner = [(d, fmt) for d in top.subdirs[:10] if (fmt := detect_folder(p / d))]
        if len(inner) == 1:
            d, fmt = inner[0]
            return (f"The sub-folder `{d}/` holds a {fmt} dataset: load that folder "
                    f"(dataset-qa info {p / d}).")
        if inner:
            return ("Its sub-folders hold datasets (" + ", ".join(
                f"`{d}/`: {fmt}" for d, fmt in inner) + "): load one of them, e.g. "
                f"dataset-qa info {p / inner[0][0]}.")
    if splits:
        kinds = {n: k for n, (_, k) in splits.items()}
        if len({k for k in kinds.values() if k}) > 1:
            return ("The split folders hold different kinds of labels ("
                    + ", ".join(f"{n}/: {k or 'none'}" for n, k in kinds.items())
                    + "); export all splits in one format, or load each split folder on its "
                      "own.")
        if not any(kinds.values()):
            return ("The split folders hold no labels file: a Roboflow export keeps its labels "
                    "beside the images (_annotations.coco.json, _annotations.csv, "
                    "_classes.csv, one .xml per image, or labels/ for YOLO); download the export "
                    "with labels, not only the images.")
    image_dirs = [d for d in top.subdirs if d.lower() in IMAGE_FOLDER_NAMES
                  and facts(p / d).images]
    if image_dirs and not top.files:
        return (f"`{image_dirs[0]}/` holds images but nothing here labels them: add their "
                "labels (a COCO JSON in annotations/, YOLO labels/ beside images/, VOC XML in "
                "annotations/, a CSV), or, for classification, put each class's images in a "
                "folder named after the class.")
    if top.images and not top.subdirs and not top.files:
        return ("It holds only images: add their labels (a COCO JSON, YOLO labels/, VOC XML, a "
                "CSV) or, for classification, put each class's images in a sub-folder named after "
                "the class.")
    if top.n(".txt"):
        return ("Its .txt files may be YOLO labels: put them in labels/ beside images/ (or add "
                "a data.yaml), or for a CVAT 'YOLO 1.1' export keep obj.data / obj.names.")
    if top.n(".json"):
        return ("Its JSON files are neither COCO, Label Studio nor Create ML: pass "
                "--format (format=...) to name the format, or re-export as COCO.")
    return ("Supported: COCO (annotations/*.json or Roboflow's train/_annotations.coco.json), "
            "YOLO (data.yaml, or images/ + labels/), Pascal VOC (Annotations/ or "
            "annotations/*.xml + images/), CVAT XML, Label Studio JSON, CSV (TensorFlow "
            "Object Detection, RetinaNet, classification), Create ML JSON, or class "
            "sub-folders of images.")


def found(p: Path) -> str:
    """What the folder holds and the closest supported layout, for a reader's refusal."""
    return f"Found: {describe_folder(p)}. {closest_layout(p)}"


def refusal(p: Path) -> str:
    """The message for a folder no reader fits."""
    return f"{p}: no supported dataset layout here. {found(p)}"
