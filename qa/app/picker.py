"""The sidebar dataset picker: the bundled sample (default), a folder or file on the server,
or an uploaded .zip (extracted safely to a temporary folder).

An upload is loaded confined to its extraction folder (``qa.load(confine_to=...)``): nothing
outside it is read. Each session keeps one extraction: it is removed when another upload
replaces it or the session ends, and folders left by a previous server are removed when the
app starts (:func:`qa.io.archive.remove_stale_extractions`)."""

from __future__ import annotations

import hashlib
import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from qa.app import state
from qa.dataset import Dataset, DatasetError

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"
SOURCES = ("Sample dataset", "Path on server", "Upload .zip")


def _signature(path: Path) -> str:
    """Changes when the labels change: the mtimes of the path and its direct children."""
    try:
        items = [path] + (sorted(path.iterdir()) if path.is_dir() else [])
        items += sorted((path / "annotations").glob("*")) if (path / "annotations").is_dir() else []
        return ";".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in items)
    except OSError:
        return ""


# "picker_" so that a dataset change (state.set_dataset) keeps it: the loaded dataset lives in it
KEY_UPLOAD = "picker_upload_extraction"


@dataclass(frozen=True)
class LoadOptions:
    """The loader's choices the CLI has as flags (``--format``, ``--voc-coordinates``,
    ``--predictions``, ``--prediction-names``, ``--yolo-columns``), as typed in the sidebar.
    ``predictions``: a predictions file or folder (server path, or a path inside an upload),
    besides ``predictions/*.json``; ``prediction_names``: the model's class names, comma-
    separated, or a names file (classes.txt, obj.names, data.yaml)."""

    format: str = "auto"
    voc_coordinates: str = "auto"
    predictions: str = ""
    prediction_names: str = ""
    yolo_columns: str = "auto"


def _inside(text: str, base: Path, confine: Path | None) -> Path:
    """``text`` as a path (relative ones against ``base``); for an upload it must stay inside
    the extraction folder ``confine`` (DatasetError otherwise)."""
    from qa.paths import is_within

    p = Path(os.path.expanduser(text.strip()))
    p = p if p.is_absolute() else base / p
    if confine is not None and not is_within(confine, p):
        raise DatasetError(f"{text.strip()}: outside the uploaded archive; give a path inside "
                           "the zip (relative to the dataset folder).")
    if not p.exists():
        raise DatasetError(f"{p}: not found; give an existing file or folder.")
    return p


_NAMES_FILES = (".txt", ".names", ".yaml", ".yml")  # what reads as a names file, not a name


def _resolved(opts: LoadOptions, path: Path, confine: Path | None) -> tuple:
    """(extra predictions path or None, prediction names: None, a names file or a tuple)."""
    base = path if path.is_dir() else path.parent
    extra = str(_inside(opts.predictions, base, confine)) if opts.predictions.strip() else None
    text = opts.prediction_names.strip()
    if not text:
        names = None
    elif "," in text or not ("/" in text or Path(text).suffix.lower() in _NAMES_FILES):
        names = tuple(n.strip() for n in text.split(",") if n.strip())
    else:
        names = str(_inside(text, base, confine))
    return extra, names


def _load_options(sb) -> LoadOptions:
    from qa.io import FORMATS
    from qa.io.predictions import YOLO_COLUMNS
    from qa.io.voc import VOC_COORDINATES

    with sb.expander("Loading options"):
        return LoadOptions(
            format=st.selectbox("Format", ("auto", *FORMATS), key="picker_format",
                                help="auto: recognised from the files"),
            voc_coordinates=st.selectbox(
                "VOC box coordinates", VOC_COORDINATES, key="picker_voc",
                help="one_based: the VOC devkit's (default); zero_based: CVAT's export. auto "
                     "uses zero_based only for files that say they come from CVAT."),
            predictions=st.text_input(
                "Model predictions (file or folder)", key="picker_extra_predictions",
                help="COCO results JSON, a folder of YOLO txt with a confidence column, or a "
                     "Label Studio export; a path on the server, or inside the uploaded zip"),
            prediction_names=st.text_input(
                "Model's class names", key="picker_prediction_names",
                help="when the model's class order differs from the dataset's: names in the "
                     "model's order, comma-separated, or a names file (classes.txt, data.yaml)"),
            yolo_columns=st.selectbox(
                "YOLO prediction columns", YOLO_COLUMNS, key="picker_yolo_columns",
                help="auto: the order whose boxes fit the images"))


@st.cache_resource(show_spinner="Loading dataset ...", max_entries=4)
def _load(path: str, signature: str, predictions: tuple[str, ...], confine_to: str | None = None,
          opts: LoadOptions = LoadOptions(), names=None) -> tuple[Dataset, list[str]]:
    """The dataset and the messages of prediction files that could not be read (a broken
    predictions file must not hide the labels). ``confine_to``: an upload's folder."""
    import qa
    from qa.io import attach_predictions

    ds = qa.load(path, format=opts.format, confine_to=confine_to,
                 voc_coordinates=opts.voc_coordinates)
    return attach_predictions(ds, list(predictions), errors="collect",
                              names=list(names) if isinstance(names, tuple) else names,
                              yolo_columns=opts.yolo_columns)


@st.cache_resource
def _cleanup_at_startup() -> int:
    """Once per server process: remove extractions left by servers that are gone."""
    from qa.io.archive import remove_stale_extractions

    return len(remove_stale_extractions())


class Extraction:
    """One session's extracted upload; its folder is removed when the object goes (the
    session ends, or another upload replaces it) or when the server exits."""

    def __init__(self, digest: str, data: bytes) -> None:
        import io

        from qa.io.archive import extract_zip, remove_extraction

        self.digest = digest
        self.folder = extract_zip(io.BytesIO(data))
        self._finalizer = weakref.finalize(self, remove_extraction, self.folder)

    def remove(self) -> None:
        self._finalizer()


def _extract(digest: str, data: bytes) -> Path:
    """The session's extraction of this upload (a new upload replaces the previous one)."""
    cur = st.session_state.get(KEY_UPLOAD)
    if cur is not None and cur.digest == digest and cur.folder.is_dir():
        return cur.folder
    if cur is not None:
        cur.remove()
        st.session_state[KEY_UPLOAD] = None
    with st.spinner("Extracting upload ..."):
        st.session_state[KEY_UPLOAD] = Extraction(digest, data)
    return st.session_state[KEY_UPLOAD].folder


def _try_load(path: Path, with_predictions: bool, label: str,
              confine_to: Path | None = None, opts: LoadOptions = LoadOptions(),
              name: str | None = None) -> None:
    from qa.io.predictions import find_predictions

    preds = tuple(str(p) for p in find_predictions(path)) if with_predictions and path.is_dir() \
        else ()
    try:
        extra, names = _resolved(opts, path, confine_to)
    except DatasetError as exc:
        st.session_state[state.KEY_LOAD_ERROR] = f"Could not load {label}: {exc}"
        return
    preds += (extra,) if extra else ()
    sig = _signature(path)
    key = f"{path.resolve()}|{sig}|{','.join(preds)}|{opts}"
    if key == state.dataset_key():
        return
    try:
        ds, problems = _load(str(path), sig, preds,
                             str(confine_to) if confine_to is not None else None, opts, names)
    except DatasetError as exc:
        st.session_state[state.KEY_LOAD_ERROR] = f"Could not load {label}: {exc}"
        return
    except Exception as exc:  # a bug or an unexpected file: say so, keep the app alive
        log.exception("loading %s failed", path)
        st.session_state[state.KEY_LOAD_ERROR] = (
            f"Could not load {label}: unexpected {type(exc).__name__}: {exc}. "
            "Please report this with the dataset's layout.")
        return
    from qa.app.cached import warm_up

    warm_up(key, ds)  # every page shares this dataset's results; computed from now on
    st.session_state[state.KEY_LOAD_ERROR] = None
    st.session_state[state.KEY_LOAD_WARNINGS] = [
        f"Predictions not loaded: {p}" for p in problems]
    if name and ds.name != name:  # an upload is named after its zip, not the temp folder
        from dataclasses import replace

        ds = replace(ds, name=name)
    state.set_dataset(ds, key)


def upload_name(file_name: str) -> str:
    """A dataset's name from its uploaded zip's file name: "my_set.zip" -> "my_set"."""
    stem = Path(str(file_name)).name
    return stem[:-4] if stem.lower().endswith(".zip") else stem


def default_dataset() -> str | None:
    """The sample's replacement given as `streamlit run app.py -- --dataset PATH` or in the
    DATASET_QA_DATASET environment variable."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--dataset", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.dataset or os.environ.get("DATASET_QA_DATASET") or None


def dataset_picker(default_path: str | None = None) -> None:
    """Draw the picker in the sidebar and load the chosen dataset into session state."""
    default_path = default_path or default_dataset()
    _cleanup_at_startup()
    sb = st.sidebar
    sb.header("Dataset")
    # the first source is the dataset given at start (--dataset), named as such
    first = f"Given dataset ({Path(default_path).name})" if default_path else SOURCES[0]
    source = sb.radio("Source", SOURCES, key="picker_source",
                      format_func=lambda x: first if x == SOURCES[0] else x)
    with_preds = sb.checkbox("Load model predictions (predictions/*.json)", value=True,
                             key="picker_predictions")
    opts = _load_options(sb) if source != SOURCES[0] else LoadOptions()
    if source == SOURCES[0]:
        path = Path(default_path) if default_path else SAMPLE_DIR
        _try_load(path, with_preds, f"the given dataset ({path})" if default_path
                  else f"the sample dataset ({path})")
    elif source == SOURCES[1]:
        text = sb.text_input("Folder or labels file on the server", key="picker_path",
                             placeholder="/data/my_dataset or /data/coco/instances_val.json")
        if text.strip():
            _try_load(Path(os.path.expanduser(text.strip())), with_preds, text.strip(),
                      opts=opts)
    else:
        up = sb.file_uploader("Dataset as .zip", type=["zip"], key="picker_upload")
        if up is not None:
            data = up.getvalue()
            digest = hashlib.sha1(data).hexdigest()
            try:
                folder = _extract(digest, data)
            except DatasetError as exc:
                st.session_state[state.KEY_LOAD_ERROR] = f"Could not load {up.name}: {exc}"
            except Exception as exc:  # a bug or an unexpected archive: say so, keep the app
                log.exception("extracting %s failed", up.name)
                st.session_state[state.KEY_LOAD_ERROR] = (
                    f"Could not load {up.name}: unexpected {type(exc).__name__}: {exc}.")
            else:
                from qa.io.archive import extraction_folder

                _try_load(folder, with_preds, up.name,
                          confine_to=extraction_folder(folder) or folder, opts=opts,
                          name=upload_name(up.name))
    ds = state.current_dataset()
    if ds is not None:
        s = ds.summary()
        sb.caption(f"**{s['name']}** ({s['format']}): {s['images']} images, "
                   f"{s['annotations']:,} annotations, {len(s['annotators'])} annotator(s)")
    for warning in st.session_state.get(state.KEY_LOAD_WARNINGS) or []:
        st.warning(warning, icon=":material/warning:")
    err = st.session_state.get(state.KEY_LOAD_ERROR)
    if err:
        st.error(err + ("" if ds is None else f"  \nStill showing the previous dataset "
                                                   f"'{ds.name}'."), icon=":material/error:")
