"""YOLO (Ultralytics) datasets.

Layouts
-------
* ``data.yaml`` with ``path`` (dataset root, relative to the yaml's folder), ``train`` / ``val``
  / ``test`` (a folder of images, a ``.txt`` list of image paths, or a list of those, relative
  to ``path``) and ``names`` (a list, or a dict ``{index: name}``).
* A folder with ``images/`` and ``labels/`` and no yaml: classes come from ``classes.txt``
  (in the folder or in ``labels/``) if present, else ``class_0``, ``class_1`` ...; a
  ``images/<split>/`` level gives the splits.
* The darknet layout (CVAT's "YOLO 1.1" export, Roboflow's "YOLO Darknet"): ``obj.data``
  (``train = data/train.txt``, ``valid = ...``, ``names = data/obj.names``), ``obj.names``
  (one class per line), ``train.txt`` listing ``data/obj_train_data/a.jpg`` and the label
  ``a.txt`` beside each image. Darknet runs from its own folder, so a ``data/`` prefix in
  these paths is the export folder itself. Without list files, ``obj_<split>_data/`` folders
  or Roboflow's split folders holding ``_darknet.labels`` (the class names) are read.

The label of ``.../images/<sub>/a.jpg`` is ``.../labels/<sub>/a.txt`` (the last ``images``
path component replaced, as Ultralytics does): one object per line, ``class cx cy w h``
normalised to [0, 1]. Lines with an odd number >= 7 of fields are polygons (``class x1 y1 x2
y2 ...``, Ultralytics/Roboflow segmentation, mixed with box lines in one file); their bbox is
kept with the points (in pixels) as a COCO polygon in ``segmentation``, and a box line of such
a dataset gets its rectangle there. A 6th column is a
confidence: that is a predictions file, quarantined here (load it with ``predictions=``).

Category ids are the YOLO class indices (0-based), so that YOLO prediction files match them.
Normalised coordinates need pixel sizes: this is the one reader that reads image headers
(:func:`qa.io._common.probe_images`, in parallel, once). An image without a label file is an image
with no objects.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    DEFAULT_ANNOTATOR,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    NAME,
    SEGMENTATION,
    SPLIT,
    SPLITS,
    SUPERCATEGORY,
    WIDTH,
    Dataset,
    DatasetError,
    H,
    W,
    X,
    Y,
)
from qa.io._common import (
    IMAGE_EXTENSIONS,
    IssueLog,
    check_root,
    expect,
    is_dir,
    is_file,
    list_images,
    parse_yaml,
    probe_images,
    read_bytes,
)
from qa.io.coco import split_from_name
from qa.paths import is_within, within_checker

log = logging.getLogger(__name__)

YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
# Ultralytics writes `class cx cy w h`; `... conf` when saving predictions with save_conf.
BOX_FIELDS = 5
PRED_FIELDS = 6
# Normalised coordinates may overshoot [0, 1] by rounding; beyond this a "polygon" is not one.
NORM_TOLERANCE = 0.01
# Cap on per-line issues per file so one broken file does not flood the report.
MAX_ISSUES_PER_FILE = 20


def label_path(image: Path, root: Path | None = None) -> Path:
    """The label file of an image: the last ``images`` path component (below ``root``, when
    given) becomes ``labels``; without one, the ``.txt`` beside the image (darknet)."""
    parts = list(image.parts)
    first = 0
    if root is not None and image.is_relative_to(root):
        first = len(Path(root).parts)
    for i in range(len(parts) - 2, first - 1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _labels_dir(images_dir: Path) -> Path:
    parts = list(images_dir.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts)
    return images_dir


# ----------------------------------------------------------------------------- yaml
def _names_from_yaml(cfg: dict, yaml_path: Path) -> dict[int, str] | None:
    names = cfg.get("names")
    if names is None:
        nc = cfg.get("nc")
        if isinstance(nc, int) and not isinstance(nc, bool) and nc >= 0:
            return {i: f"class_{i}" for i in range(nc)}
        return None
    if isinstance(names, list):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        out = {}
        for k, v in names.items():
            try:
                out[int(k)] = str(v)
            except (TypeError, ValueError):
                raise DatasetError(
                    f"{yaml_path}: 'names' keys must be class indices (0, 1, ...), got {k!r}. "
                    "Write names as a list or as {0: name, 1: name}."
                ) from None
        return out
    raise DatasetError(
        f"{yaml_path}: 'names' must be a list or a dict {{index: name}}, got "
        f"{type(names).__name__}. Fix the yaml."
    )


def _names_from_classes_txt(folder: Path) -> dict[int, str] | None:
    for p in (folder / "classes.txt", folder / "labels" / "classes.txt"):
        if p.is_file():
            lines = read_bytes(p).decode("utf-8", errors="replace").splitlines()
            return {i: ln.strip() for i, ln in enumerate(lines) if ln.strip()}
    return None


def _images_of_entry(entry, root: Path, yaml_path: Path, issues: IssueLog) -> tuple[list, list]:
    """(image paths, image folders) of one ``train``/``val``/``test`` value."""
    entries = entry if isinstance(entry, list) else [entry]
    paths, folders = [], []
    for e in entries:
        if not isinstance(e, str) or not e.strip():
            issues.error("malformed_yaml",
                         f"{yaml_path}: split entry {e!r} is not a path; skipped. Give a "
                         "folder of images or a .txt list of image paths.")
            continue
        p = Path(e) if os.path.isabs(e) else root / e
        if e.startswith("../") and not (is_dir(p) or is_file(p)):
            p = root / e[3:]  # Ultralytics' fallback, which Roboflow's '../train/images' needs
        if (is_dir(p) or is_file(p)) and not is_within(root, p):
            issues.error("unsafe_path",
                         f"{yaml_path}: split entry {e!r} ({p}) leads outside the dataset root "
                         f"{root}; it is not read. Keep the splits inside the dataset folder.")
            continue
        if is_dir(p):
            paths += list_images(p, root=root, issues=issues)
            folders.append(p)
        elif is_file(p) and p.suffix.lower() == ".txt":
            for ln in read_bytes(p).decode("utf-8", errors="replace").splitlines():
                ln = ln.strip()
                if not ln or ln.startswith("#"):
                    continue
                # Ultralytics: './x' is relative to the list's folder; others to the root
                q = p.parent / ln[2:] if ln.startswith("./") else (
                    Path(ln) if os.path.isabs(ln) else root / ln)
                paths.append(q)
        elif is_file(p) and p.suffix.lower() in IMAGE_EXTENSIONS:
            paths.append(p)
        else:
            issues.error("missing_split",
                         f"{yaml_path}: split path {e!r} ({p}) does not exist; its images are "
                         "not loaded. Fix 'path' or the split entry in the yaml.")
    return paths, folders


def _layout_from_yaml(yaml_path: Path, issues: IssueLog):
    cfg = parse_yaml(yaml_path)
    expect(isinstance(cfg, dict), yaml_path,
           f"expected a YOLO data.yaml mapping (path, train, val, names), got "
           f"{type(cfg).__name__}. Fix the yaml.")
    base = yaml_path.parent
    rp = cfg.get("path")
    if rp is None or rp == "":
        root = base
    else:
        expect(isinstance(rp, str), yaml_path, f"'path' must be a string, got {rp!r}.")
        root = Path(rp) if os.path.isabs(rp) else base / rp
        if is_dir(root):  # an upload may not point outside itself; a missing one falls back
            check_root(root, yaml_path, f"'path: {rp}'")
        else:
            # Ultralytics falls back to paths relative to the yaml's folder
            issues.warning("missing_root",
                           f"{yaml_path}: 'path' {rp!r} is not a folder; using the yaml's "
                           "folder instead. Fix 'path' in the yaml.")
            root = base
    names = _names_from_yaml(cfg, yaml_path)
    if names is None:
        names = _names_from_classes_txt(root)
    split_images = []
    folders = []
    for key in ("train", "val", "valid", "test"):
        if cfg.get(key) is None:
            continue
        split = "val" if key == "valid" else key
        paths, fs = _images_of_entry(cfg[key], root, yaml_path, issues)
        split_images += [(p, split) for p in paths]
        folders += fs
    if not split_images and not any(cfg.get(k) for k in ("train", "val", "test")):
        raise DatasetError(
            f"{yaml_path}: no 'train', 'val' or 'test' entry. Add e.g. 'train: images/train'.")
    return root, names, split_images, folders


DARKNET_MARKERS = ("obj.data", "obj.names")
ROBOFLOW_LABELS = "_darknet.labels"
_DARKNET_SPLITS = (("train", "train"), ("valid", "val"), ("val", "val"), ("test", "test"))


def is_darknet(folder: Path) -> bool:
    """True for a darknet-layout folder (``obj.data`` / ``obj.names``, or Roboflow's
    ``_darknet.labels`` in it or in a split folder)."""
    folder = Path(folder)
    if any(is_file(folder / m) for m in (*DARKNET_MARKERS, ROBOFLOW_LABELS)):
        return True
    try:
        subs = [d for d in folder.iterdir() if d.is_dir()]
    except OSError:
        return False
    return any(is_file(d / ROBOFLOW_LABELS) for d in subs)


def _darknet_config(path: Path) -> dict[str, str]:
    """``key = value`` lines of an ``obj.data`` file."""
    out = {}
    for ln in read_bytes(path).decode("utf-8", errors="replace").splitlines():
        if "=" in ln and not ln.lstrip().startswith("#"):
            k, v = ln.split("=", 1)
            out[k.strip().lower()] = v.strip()
    return out


def _darknet_path(folder: Path, ref: str) -> Path:
    """A path written in ``obj.data`` or a list file: as given (relative to the export
    folder), else without darknet's leading ``data/`` (the export folder itself)."""
    ref = ref.strip().replace("\\", "/")
    cands = [Path(ref) if os.path.isabs(ref) else folder / ref]
    if ref.startswith("data/"):
        cands.append(folder / ref[len("data/"):])
    return next((c for c in cands if is_file(c) or is_dir(c)), cands[-1])


def _names_file(p: Path) -> dict[int, str] | None:
    if not is_file(p):
        return None
    lines = read_bytes(p).decode("utf-8-sig", errors="replace").splitlines()
    return {i: ln.strip() for i, ln in enumerate(lines) if ln.strip()}


def _layout_from_darknet(folder: Path, issues: IssueLog):
    cfg = _darknet_config(folder / "obj.data") if is_file(folder / "obj.data") else {}
    names_p = _darknet_path(folder, cfg["names"]) if cfg.get("names") else folder / "obj.names"
    names = _names_file(names_p) if is_within(folder, names_p) else None
    split_images: list = []
    folders: list = []
    listed = False
    for key, split in _DARKNET_SPLITS:
        if not cfg.get(key):
            continue
        lf = _darknet_path(folder, cfg[key])
        if not is_file(lf) or not is_within(folder, lf):
            issues.warning("missing_split",
                           f"{folder / 'obj.data'}: '{key} = {cfg[key]}' names no list file "
                           f"inside the export; the {split} split is read from its "
                           "obj_<split>_data/ folder if there is one.")
            continue
        listed = True
        for ln in read_bytes(lf).decode("utf-8", errors="replace").splitlines():
            if ln.strip() and not ln.lstrip().startswith("#"):
                split_images.append((_darknet_path(folder, ln), split))
    if not listed:
        subs = sorted(d for d in folder.iterdir() if is_dir(d) and not d.name.startswith("."))
        for d in subs:
            m = re.fullmatch(r"obj_(\w+?)_data", d.name)
            if m is None and not is_file(d / ROBOFLOW_LABELS):
                continue
            split = split_from_name(m.group(1) if m else d.name)
            split_images += [(p, split) for p in list_images(d, root=folder, issues=issues)]
            folders.append(d)
            if names is None and is_file(d / ROBOFLOW_LABELS):
                names = _names_file(d / ROBOFLOW_LABELS)
        if not folders and is_file(folder / ROBOFLOW_LABELS):  # one split, flat
            split_images = [(p, None) for p in list_images(folder, root=folder, issues=issues)]
    if names is None:
        names = _names_file(folder / ROBOFLOW_LABELS) or _names_from_classes_txt(folder)
    return folder, names, split_images, folders


def _layout_from_folder(folder: Path, issues: IssueLog):
    images_dir = folder / "images"
    if not images_dir.is_dir() or not (folder / "labels").is_dir():
        from qa.io._splits import split_folders

        per_split = [(s, d / "images") for s, d in split_folders(folder)
                     if is_dir(d / "images") and is_dir(d / "labels")]
        if per_split:  # train/images + train/labels ... without a data.yaml
            names = _names_from_classes_txt(folder)
            split_images = [(p, s) for s, d in per_split
                            for p in list_images(d, root=folder, issues=issues)]
            return folder, names, split_images, [d for _, d in per_split]
        from qa.io.layout import found as found_here

        raise DatasetError(
            f"{folder}: not a YOLO dataset: expected a data.yaml, images/ and labels/ folders "
            "(also inside train/ valid/ test/), or a darknet obj.data. "
            + found_here(folder))
    names = _names_from_classes_txt(folder)
    split_images = []
    for p in list_images(images_dir, root=folder, issues=issues):
        rel = p.relative_to(images_dir).parts
        split = split_from_name(rel[0]) if len(rel) > 1 else None
        split_images.append((p, split if split in SPLITS else None))
    return folder, names, split_images, [images_dir]


def _under_image_root(file_name: str, image_root: Path) -> str:
    """The name, relative to ``image_root``, of the image a label file's listing calls
    ``file_name``: the whole relative path if it is there, else the path with its leading
    folders dropped one by one (CVAT's ``obj_train_data/sub/a.jpg`` is ``sub/a.jpg`` or
    ``a.jpg`` in the task's image folder). Unchanged when none exists (reported missing)."""
    from qa.paths import lexically_inside

    parts = file_name.split("/")
    for k in range(len(parts)):
        cand = "/".join(parts[k:])
        p = lexically_inside(image_root, cand)
        if p is not None and is_file(p):
            return cand
    return file_name


# ----------------------------------------------------------------------------- labels
def _parse_label_file(lp: Path, img_size, image_id: int, issues: IssueLog, names):
    """Rows (category_id, x, y, w, h, segmentation) of one label file, in pixels."""
    try:
        text = lp.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        issues.error("unreadable_label", f"{lp}: cannot be read ({exc}); its boxes are skipped.",
                     image_id=image_id)
        return []
    lines = text.splitlines()
    rows = []
    n_bad = 0
    iw, ih = img_size
    if iw is None or ih is None:
        if any(ln.strip() for ln in lines):
            issues.error("unknown_image_size",
                         f"{lp}: the size of its image cannot be read, so its normalised boxes "
                         "cannot be converted to pixels; the boxes are quarantined. Check that "
                         "the image file is a readable image.", image_id=image_id)
        return []
    for no, ln in enumerate(lines, start=1):
        fields = ln.split()
        if not fields or fields[0].startswith("#"):
            continue

        def bad(msg, check="malformed_label"):
            nonlocal n_bad
            n_bad += 1
            if n_bad <= MAX_ISSUES_PER_FILE:
                issues.error(check, f"{lp}:{no}: {msg}; the line is quarantined.",
                             image_id=image_id)

        if len(fields) == PRED_FIELDS:
            bad("6 fields: the 6th is a confidence, so this is a predictions file, not labels. "
                "Load it with predictions=... instead", check="prediction_in_labels")
            continue
        polygon = len(fields) > PRED_FIELDS and len(fields) % 2 == 1
        if len(fields) != BOX_FIELDS and not polygon:
            bad(f"expected 5 fields 'class cx cy w h' (or a polygon 'class x1 y1 x2 y2 ...'), "
                f"got {len(fields)}: {ln.strip()[:80]!r}")
            continue
        try:
            vals = [float(v) for v in fields]
        except ValueError:
            bad(f"non-numeric value in {ln.strip()[:80]!r}")
            continue
        if not all(np.isfinite(vals)):
            bad(f"non-finite value in {ln.strip()[:80]!r}")
            continue
        cls = vals[0]
        if cls != int(cls) or cls < 0:
            bad(f"class {fields[0]!r} is not a non-negative integer index")
            continue
        cls = int(cls)
        if names is not None and cls not in names:
            bad(f"class {cls} is not in names (0..{max(names) if names else -1}); add it to "
                "the yaml's names", check="unknown_category")
            continue
        seg = None
        if polygon and not all(-NORM_TOLERANCE <= v <= 1 + NORM_TOLERANCE for v in vals[1:]):
            what = ("7 fields read as a 3-point polygon 'class x1 y1 x2 y2 x3 y3'"
                    if len(fields) == 7 else f"a polygon of {len(fields) // 2} points")
            bad(f"{what}, but its values are not normalised to [0, 1]: "
                f"{ln.strip()[:80]!r}. A box is 'class cx cy w h' (5 fields); extra columns "
                "(a confidence, a track id) belong in a predictions file")
            continue
        if polygon:
            pts = np.asarray(vals[1:], dtype=np.float64).reshape(-1, 2) * (iw, ih)
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            box = (x0, y0, x1 - x0, y1 - y0)
            seg = [pts.ravel().round(3).tolist()]
        else:
            cx, cy, w, h = vals[1:]
            box = ((cx - w / 2) * iw, (cy - h / 2) * ih, w * iw, h * ih)
        rows.append((cls, *box, seg))
    if n_bad > MAX_ISSUES_PER_FILE:
        issues.error("malformed_label",
                     f"{lp}: {n_bad - MAX_ISSUES_PER_FILE} more malformed lines.",
                     image_id=image_id)
    return rows


def read(path: Path | str, *, image_root=None) -> Dataset:
    """Read a YOLO dataset (``data.yaml`` or a folder, see the module doc) into a Dataset."""
    path = Path(path)
    issues = IssueLog()
    yaml_path = None
    if path.is_file():
        yaml_path = path
    elif path.is_dir():
        yaml_path = next((path / n for n in YAML_NAMES if (path / n).is_file()), None)
    else:
        raise DatasetError(f"{path}: no such file or directory. Check the path.")
    if yaml_path is not None:
        root, names, split_images, folders = _layout_from_yaml(yaml_path, issues)
    elif is_darknet(path):
        root, names, split_images, folders = _layout_from_darknet(path, issues)
    else:
        root, names, split_images, folders = _layout_from_folder(path, issues)
    # one row per image file (first split wins when an image is listed twice)
    seen: dict[str, tuple[Path, str | None]] = {}
    for p, split in split_images:
        fn = os.path.relpath(p, root).replace(os.sep, "/")
        if fn in seen:
            if seen[fn][1] != split:
                issues.warning("image_in_two_splits",
                               f"{p}: listed in both '{seen[fn][1]}' and '{split}'; kept in "
                               f"'{seen[fn][1]}'. Remove it from one split.")
            continue
        seen[fn] = (p, split)
    file_names = sorted(seen)
    ids = {fn: i + 1 for i, fn in enumerate(file_names)}
    paths = [seen[fn][0] for fn in file_names]
    label_root = root  # label files are read from the dataset root, images from image_root
    image_names = file_names
    if image_root is not None:  # images elsewhere (CVAT "YOLO 1.1" without images)
        root = check_root(Path(image_root), path, "image_root")
        image_names = [_under_image_root(fn, root) for fn in file_names]
    # the headers are read once, here: load() sees the probe columns and does not probe again;
    # a listed image outside the root is not opened (and its labels cannot be converted)
    images = probe_images(pd.DataFrame({
        IMAGE_ID: np.arange(1, len(file_names) + 1, dtype=np.int64),
        FILE_NAME: image_names,
        SPLIT: [seen[fn][1] for fn in file_names],
    }), root)
    sizes = [(None if pd.isna(w) else int(w), None if pd.isna(h) else int(h))
             for w, h in zip(images[WIDTH], images[HEIGHT])]

    rows = []
    expected_labels = set()
    label_inside = within_checker(label_root)
    for fn, p, size in zip(file_names, paths, sizes):
        lp = label_path(p, label_root)
        expected_labels.add(os.path.normcase(os.path.abspath(lp)))
        # the path rule: an image listed from outside the root is refused, and so is its label
        if label_inside(lp) and is_file(lp):
            for r in _parse_label_file(lp, size, ids[fn], issues, names):
                rows.append((ids[fn], *r))

    # label files whose image is missing
    for folder in folders:
        ld = _labels_dir(folder)
        if not is_dir(ld) or not is_within(label_root, ld):
            continue
        # darknet keeps each label beside its image: look in that folder only
        found = sorted(ld.glob("*.txt")) if ld == folder else sorted(ld.rglob("*.txt"))
        for lp in found:
            if lp.name in ("classes.txt", "obj.names", ROBOFLOW_LABELS):
                continue
            if os.path.normcase(os.path.abspath(lp)) not in expected_labels:
                issues.error("label_without_image",
                             f"{lp}: label file has no image (looked for {lp.stem}.* under "
                             f"{folder}); its boxes are not loaded. Add the image or delete the "
                             "label file.")

    seen_classes = sorted({r[1] for r in rows})
    if names is None:
        names = {c: f"class_{c}" for c in seen_classes}
    cats = pd.DataFrame({CATEGORY_ID: list(names), NAME: list(names.values()),
                         SUPERCATEGORY: [None] * len(names)})
    n = len(rows)
    box = np.array([r[2:6] for r in rows], dtype=np.float64).reshape(n, 4)
    anns = pd.DataFrame({
        ANN_ID: np.arange(1, n + 1, dtype=np.int64),
        IMAGE_ID: np.array([r[0] for r in rows], dtype=np.int64),
        CATEGORY_ID: np.array([r[1] for r in rows], dtype=np.int64),
        ANNOTATOR: DEFAULT_ANNOTATOR,
        X: box[:, 0], Y: box[:, 1], W: box[:, 2], H: box[:, 3],
    })
    if any(r[6] is not None for r in rows):
        # polygons kept as COCO polygons (mask IoU, the gallery); a box line among them is its
        # rectangle, so that every object of a segmentation set has a mask
        anns[SEGMENTATION] = [r[6] if r[6] is not None else
                              [[r[2], r[3], r[2] + r[4], r[3], r[2] + r[4], r[3] + r[5], r[2],
                                r[3] + r[5]]] for r in rows]
    name = (yaml_path.parent.name if yaml_path is not None else path.name) or path.name
    return Dataset(images=images, categories=cats, annotations=anns, root=root, format="yolo",
                   name=name, annotators=(DEFAULT_ANNOTATOR,), load_issues=issues.frame())
