"""Helpers shared by the format readers: safe paths, image probing, issue collection,
and parsing with errors that name the file and the position."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    EXISTS,
    FILE_ERROR,
    FILE_NAME,
    HEADER_HEIGHT,
    HEADER_WIDTH,
    HEIGHT,
    IMAGE_ID,
    ISSUES_SCHEMA,
    NAME,
    READABLE,
    SUPERCATEGORY,
    UNSAFE_PATH,
    WIDTH,
    DatasetError,
    H,
    W,
    X,
    Y,
    empty_frame,
)
from qa.paths import is_within, lexically_inside, within_boundary

log = logging.getLogger(__name__)

LABEL_SUFFIXES = (".json", ".xml", ".yaml", ".yml", ".csv", ".tsv", ".txt", ".data", ".names")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Header reads are I/O bound: threads overlap the disk waits even on 2 cores.
PROBE_WORKERS = 16


# ----------------------------------------------------------------------------- issues
@dataclass
class IssueLog:
    """Collects problems found while loading; becomes ``Dataset.load_issues``."""

    rows: list[dict] = field(default_factory=list)

    def add(self, severity: str, check: str, message: str, *, image_id=None, ann_id=None):
        self.rows.append(
            {"severity": severity, "check": check, IMAGE_ID: image_id, ANN_ID: ann_id,
             "message": message}
        )

    def error(self, check: str, message: str, **ids):
        self.add("error", check, message, **ids)

    def warning(self, check: str, message: str, **ids):
        self.add("warning", check, message, **ids)

    def frame(self) -> pd.DataFrame:
        if not self.rows:
            return empty_frame(ISSUES_SCHEMA)
        df = pd.DataFrame(self.rows, columns=list(ISSUES_SCHEMA))
        for c in (IMAGE_ID, ANN_ID):
            df[c] = pd.array(
                [None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)
                 for v in df[c]], dtype="Int64")
        return df


# ----------------------------------------------------------------------------- paths
def list_images(folder: Path, *, root: Path | None = None,
                issues: IssueLog | None = None) -> list[Path]:
    """Image files below ``folder``, sorted, hidden files skipped.

    With ``root``, the path rule of :mod:`qa.paths` holds: a ``folder`` (or a sub-folder)
    whose real location is outside ``root`` is not listed, and says so in ``issues``. Files
    are listed as they are; a linked file that leads out is refused when it is opened
    (``unsafe_path``)."""
    if root is not None and not is_within(root, folder):
        refuse_outside(issues, folder, root)
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            sub = Path(dirpath) / d
            if root is not None and sub.is_symlink() and not is_within(root, sub):
                refuse_outside(issues, sub, root)
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                out.append(Path(dirpath) / f)
    return out


def refuse_outside(issues: IssueLog | None, path: Path, root: Path) -> None:
    msg = (f"{path}: this folder leads outside the dataset root {root} (a symbolic link or "
           "'..'); it is not read. Copy the files into the dataset folder.")
    if issues is not None:
        issues.error("unsafe_path", msg)
    else:
        log.warning("%s", msg)


def is_file(path: Path) -> bool:
    """``path.is_file()`` that says False instead of raising (a name longer than the file
    system allows, a symlink loop, no permission)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    """``path.is_dir()`` that says False instead of raising (see :func:`is_file`)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def check_root(root: Path, source: Path, what: str = "the dataset root") -> Path:
    """``root``, or DatasetError when a load confined to an upload's folder
    (:func:`qa.paths.confined_to`) would read from outside it."""
    if not within_boundary(root):
        raise DatasetError(
            f"{source}: {what} ({root}) lies outside the uploaded dataset's folder; an upload "
            "can only read its own files. Use relative paths inside the zip (e.g. 'path: .' "
            "in data.yaml) and keep the images in it.")
    return root


# ----------------------------------------------------------------------------- images
def _probe_one(path: Path | None, root: Path | None = None
               ) -> tuple[bool, bool, int | None, int | None, str | None]:
    """(exists, readable, width, height, error) for one image file, read through the one image
    reader (:func:`qa.images.read_header`): a file whose real path (symlinks and linked
    folders followed) leaves ``root`` is not opened."""
    from qa.images import OUTSIDE_ROOT, read_header

    if path is None:
        return False, False, None, None, OUTSIDE_ROOT
    return read_header(root if root is not None else path.parent, str(path), real_root=root)


def probe_images(
    images: pd.DataFrame,
    root: Path | None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Return ``images`` with exists / readable / header size / file_error / unsafe_path
    columns, read from file headers in parallel. Fills width/height from the header where
    the labels gave none. The files are only read, never written."""
    images = images.copy()
    n = len(images)
    if root is None or n == 0:
        for c, v in ((EXISTS, False), (READABLE, False), (UNSAFE_PATH, False)):
            images[c] = np.full(n, v)
        images[HEADER_WIDTH] = pd.array([pd.NA] * n, dtype="Int64")
        images[HEADER_HEIGHT] = pd.array([pd.NA] * n, dtype="Int64")
        images[FILE_ERROR] = None
        for col in (WIDTH, HEIGHT):
            if col not in images:
                images[col] = pd.array([pd.NA] * n, dtype="Int64")
        return images
    from qa.images import LINK_OUTSIDE, NOT_FOUND, OUTSIDE_ROOT

    rootp = Path(root).resolve()
    paths = [lexically_inside(rootp, str(f)) for f in images[FILE_NAME]]
    present = _existing(paths)
    results: list = [(False, False, None, None, OUTSIDE_ROOT if p is None else NOT_FOUND)
                     for p in paths]
    todo = [i for i, ok in enumerate(present) if ok]
    with ThreadPoolExecutor(max_workers=PROBE_WORKERS) as pool:
        probe = partial(_probe_one, root=rootp)
        for k, r in enumerate(pool.map(probe, [paths[i] for i in todo], chunksize=64)):
            results[todo[k]] = r
            if progress is not None and (k % 256 == 0 or k == len(todo) - 1):
                progress(k + 1, len(todo))
    ex, rd, hw, hh, err = zip(*results) if results else ([], [], [], [], [])
    images[EXISTS] = np.array(ex, dtype=bool)
    images[READABLE] = np.array(rd, dtype=bool)
    images[HEADER_WIDTH] = pd.array(list(hw), dtype="Int64")
    images[HEADER_HEIGHT] = pd.array(list(hh), dtype="Int64")
    images[FILE_ERROR] = list(err)
    images[UNSAFE_PATH] = np.array([p is None or e == LINK_OUTSIDE
                                    for p, e in zip(paths, err)], dtype=bool)
    for col, hcol in ((WIDTH, HEADER_WIDTH), (HEIGHT, HEADER_HEIGHT)):
        cur = images[col] if col in images else pd.Series([pd.NA] * n, dtype="Int64")
        images[col] = pd.array(cur, dtype="Int64").fillna(images[hcol]) if n else cur
    return images


def _existing(paths: list[Path | None]) -> list[bool]:
    """Which paths are files, listing each folder once instead of one stat per file (a
    118k-image COCO folder: 0.1 s instead of seconds)."""
    listing: dict[Path, set[str] | None] = {}
    out = []
    for p in paths:
        if p is None:
            out.append(False)
            continue
        parent = p.parent
        if parent not in listing:
            try:
                listing[parent] = {e.name for e in os.scandir(parent) if not e.is_dir()}
            except OSError:
                listing[parent] = None
        names = listing[parent]
        out.append(names is not None and p.name in names)
    return out


# ----------------------------------------------------------------------------- parsing
def _line_col(data: bytes, pos: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, pos) + 1
    col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    return line, col


def read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found. Check the path.") from None
    except IsADirectoryError:
        try:
            inside = sorted(p.name for p in Path(path).iterdir()
                            if p.suffix.lower() in LABEL_SUFFIXES)[:5]
        except OSError:
            inside = []
        hint = f" It holds {inside}: give one of those," if inside else " Give a labels file,"
        raise DatasetError(f"{path}: is a folder, but a file was expected here.{hint} or "
                           "load the folder with format='auto' (no --format) to let it be "
                           "recognised.") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc}).") from None


_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def parse_json(path: Path, data: bytes | None = None, *, decoder=None):
    """Parse JSON (into Python objects, or typed with a msgspec ``decoder``). Syntax and
    encoding errors raise DatasetError with line:col; a typed decoder's schema mismatch
    propagates as msgspec.ValidationError so the caller can fall back to a lenient read."""
    import msgspec

    data = read_bytes(path) if data is None else data
    if data.startswith(_UTF8_BOM):  # Windows tools write one; JSON parsers refuse it
        data = data[len(_UTF8_BOM):]
    elif data.startswith(_UTF16_BOMS):
        raise DatasetError(f"{path}: the file is UTF-16 text; JSON must be UTF-8. Save it as "
                           "UTF-8 (e.g. in your editor's 'Save with encoding').")
    try:
        return decoder.decode(data) if decoder is not None else msgspec.json.decode(data)
    except RecursionError:
        raise DatasetError(f"{path}: the JSON is nested too deeply to read (thousands of "
                           "levels); no labelling tool writes that. Re-export the file.") from None
    except msgspec.ValidationError as exc:
        if decoder is not None:
            raise
        # untyped decoding raises it too, e.g. for an integer too large for 64 bits
        raise DatasetError(json_error_message(path, data, exc)) from None
    except msgspec.DecodeError as exc:
        raise DatasetError(json_error_message(path, data, exc)) from None
    except UnicodeDecodeError as exc:
        # msgspec releases before 0.23 raise this for invalid UTF-8 inside a string
        raise DatasetError(json_error_message(path, data, exc)) from None


def _first_invalid_utf8(data: bytes) -> int | None:
    """Offset of the first byte that is not valid UTF-8, or None when all of it is."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def json_error_message(path: Path, data: bytes, exc: Exception) -> str:
    """The message for unreadable JSON: the file, where (line and column, found by this
    project, not read from the parser's wording when it can be found here), what and the fix."""
    import re

    msg = str(exc)
    bad_byte = _first_invalid_utf8(data)
    m = re.search(r"\(?(?:at )?byte (\d+)", msg)
    where = ""
    if bad_byte is not None:
        # parsers word this differently and some give an offset inside the string only
        line, col = _line_col(data, bad_byte)
        where = f" at line {line}, column {col}"
        msg = f"invalid UTF-8 at byte {bad_byte}; save the file as UTF-8"
    elif "truncated" in msg:
        n_lines = data.count(b"\n") + 1
        where = f" at the end of the file (line {n_lines}; the file is cut short)"
    elif m:
        line, col = _line_col(data, int(m.group(1)))
        where = f" at line {line}, column {col}"
    return (
        f"{path}: malformed JSON{where}: {msg}. "
        "Fix the file or re-export it from your labelling tool."
    )


def parse_xml(path: Path):
    """Parse an XML file into an ElementTree root; errors name the line and column."""
    import xml.etree.ElementTree as ET

    data = read_bytes(path)
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        line, col = exc.position
        raise DatasetError(
            f"{path}: malformed XML at line {line}, column {col + 1}: {exc}. "
            "Fix the file or re-export it."
        ) from None
    except (LookupError, ValueError) as exc:  # an unknown encoding in the declaration ...
        raise DatasetError(f"{path}: unreadable XML ({exc}). Save it as UTF-8 with a plain "
                           "'<?xml version=\"1.0\" encoding=\"utf-8\"?>' declaration.") from None
    except RecursionError:
        raise DatasetError(f"{path}: the XML is nested too deeply to read. Re-export it.") \
            from None


# YAML limits. A data.yaml or a report config is a few KB with tens of nodes; these caps are
# orders of magnitude above that, and stop an alias bomb ("billion laughs": nine levels of
# ten references expand 1 KB to 10^9 nodes) before anything is expanded.
MAX_YAML_BYTES = 4 * 1024**2
MAX_YAML_NODES = 1_000_000


def load_yaml_safe(path: Path | str, text: str | bytes | None = None, *,
                   max_nodes: int = MAX_YAML_NODES):
    """Parse a YAML file with PyYAML's safe loader, refusing what could exhaust the machine:
    a file over ``MAX_YAML_BYTES``, a document whose aliases would expand to more than
    ``max_nodes`` nodes (counted on the composed graph, before anything is built), an alias
    that contains itself, and nesting deeper than Python's recursion limit. Every refusal and
    every syntax error is a :class:`DatasetError` naming the file. Every YAML this project
    reads goes through here (data.yaml, the report's config file)."""
    import yaml

    path = Path(path)
    data = read_bytes(path) if text is None else text
    if len(data) > MAX_YAML_BYTES:
        raise DatasetError(f"{path}: {len(data) / 1024**2:.1f} MiB is too large for a YAML "
                           f"config (limit {MAX_YAML_BYTES / 1024**2:.0f} MiB).")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start}); save the YAML as "
                               "UTF-8.") from None
    loader = None
    try:
        loader = yaml.SafeLoader(data)
        node = loader.get_single_node()
        if node is None:
            return None
        n = _yaml_size(node, max_nodes)
        if n > max_nodes:
            raise DatasetError(
                f"{path}: the YAML's aliases (*name references) expand to more than "
                f"{max_nodes:,} values; refusing a possible alias bomb. Write the values out "
                "or use fewer nested references.")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DatasetError(f"{path}: malformed YAML{where}: {problem}. Fix the file.") from None
    except RecursionError:
        raise DatasetError(f"{path}: the YAML is nested too deeply to read; no config needs "
                           "that. Fix the file.") from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_size(root, limit: int) -> int:
    """Number of nodes ``root`` expands to with every alias followed (shared nodes counted
    each time they are referenced), up to just past ``limit``. Iterative; a node that
    contains itself is a DatasetError-worthy loop, reported as over the limit."""
    import yaml

    sizes: dict[int, int] = {}
    stack: list[tuple[object, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            kids = _yaml_children(node, yaml)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(k)] for k in kids))
            continue
        if key in sizes:
            continue
        if key in open_:  # an alias to an enclosing node: infinite when expanded
            return limit + 1
        open_.add(key)
        stack.append((node, True))
        for k in _yaml_children(node, yaml):
            if id(k) in open_:
                return limit + 1
            if id(k) not in sizes:
                stack.append((k, False))
    return sizes[id(root)]


def _yaml_children(node, yaml) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [x for kv in node.value for x in kv]
    return []


def parse_yaml(path: Path):
    """A YAML file's content (see :func:`load_yaml_safe`)."""
    return load_yaml_safe(path)


def expect(cond: bool, path: Path, what: str) -> None:
    """Raise DatasetError naming the file when a structural expectation fails."""
    if not cond:
        raise DatasetError(f"{path}: {what}")


def ids_by_file_name(file_names) -> dict[str, int]:
    """Stable integer image ids for formats without them: 1..n in sorted file-name order."""
    return {f: i + 1 for i, f in enumerate(sorted(set(file_names)))}


def categories_by_name(names) -> tuple[dict[str, int], pd.DataFrame]:
    """Category ids 1..n for class ``names`` (in the order given) and the categories table,
    for formats that name classes instead of numbering them."""
    names = list(names)
    cat_ids = {n: i + 1 for i, n in enumerate(names)}
    return cat_ids, pd.DataFrame({CATEGORY_ID: list(cat_ids.values()), NAME: names,
                                  SUPERCATEGORY: [None] * len(names)})


def named_box_annotations(a: pd.DataFrame, ids: dict[str, int], cat_ids: dict[str, int],
                          annotator: str | None = None) -> pd.DataFrame:
    """The annotations table of boxes given by file name and class name: ``a`` has columns
    file_name, name, x, y, w, h and annotator (unless ``annotator`` names one for all). Ids
    are 1..n in row order; the caller adds format-specific columns."""
    return pd.DataFrame({
        ANN_ID: np.arange(1, len(a) + 1, dtype=np.int64),
        IMAGE_ID: a[FILE_NAME].map(ids).astype("int64"),
        CATEGORY_ID: a[NAME].map(cat_ids).astype("int64"),
        ANNOTATOR: annotator if annotator is not None else a[ANNOTATOR].astype("object"),
        X: a[X].astype("float64"), Y: a[Y].astype("float64"),
        W: a[W].astype("float64"), H: a[H].astype("float64"),
    })
