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


@st.cache_resource(show_spinner="Loading dataset ...", max_entries=4)
def _load(path: str, signature: str, predictions: tuple[str, ...], confine_to: str | None = None
          ) -> tuple[Dataset, list[str]]:
    """The dataset and the messages of prediction files that could not be read (a broken
    predictions file must not hide the labels). ``confine_to``: an upload's folder."""
    import qa
    from qa.io import attach_predictions

    return attach_predictions(qa.load(path, confine_to=confine_to), list(predictions),
                              errors="collect")


@st.cache_resource
def _cleanup_at_startup() -> int:
    """Once per server process: remove extractions left by servers that are gone."""
    from qa.io.archive import remove_stale_extractions

    return len(remove_stale_extractions())


class _Extraction:
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
        st.session_state[KEY_UPLOAD] = _Extraction(digest, data)
    return st.session_state[KEY_UPLOAD].folder


def _try_load(path: Path, with_predictions: bool, label: str,
              confine_to: Path | None = None) -> None:
    from qa.io.predictions import find_predictions

    preds = tuple(str(p) for p in find_predictions(path)) if with_predictions and path.is_dir() \
        else ()
    sig = _signature(path)
    key = f"{path.resolve()}|{sig}|{','.join(preds)}"
    if key == state.dataset_key():
        return
    try:
        ds, problems = _load(str(path), sig, preds,
                             str(confine_to) if confine_to is not None else None)
    except DatasetError as exc:
        st.session_state[state.KEY_LOAD_ERROR] = f"Could not load {label}: {exc}"
        return
    except Exception as exc:  # a bug or an unexpected file: say so, keep the app alive
        log.exception("loading %s failed", path)
        st.session_state[state.KEY_LOAD_ERROR] = (
            f"Could not load {label}: unexpected {type(exc).__name__}: {exc}. "
            "Please report this with the dataset's layout.")
        return
    st.session_state[state.KEY_LOAD_ERROR] = None
    st.session_state[state.KEY_LOAD_WARNINGS] = [
        f"Predictions not loaded: {p}" for p in problems]
    state.set_dataset(ds, key)


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
    source = sb.radio("Source", SOURCES, key="picker_source")
    with_preds = sb.checkbox("Load model predictions (predictions/*.json)", value=True,
                             key="picker_predictions")
    if source == SOURCES[0]:
        path = Path(default_path) if default_path else SAMPLE_DIR
        _try_load(path, with_preds, f"the sample dataset ({path})")
    elif source == SOURCES[1]:
        text = sb.text_input("Folder or labels file on the server", key="picker_path",
                             placeholder="/data/my_dataset or /data/coco/instances_val.json")
        if text.strip():
            _try_load(Path(os.path.expanduser(text.strip())), with_preds, text.strip())
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
                          confine_to=extraction_folder(folder) or folder)
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
