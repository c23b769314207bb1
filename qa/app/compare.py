"""The Compare page's widgets and cached calls: choose B (a split of the current dataset, a
folder on the server, an uploaded .zip), run :func:`qa.drift.compare_datasets` on the cached
pixel pass and the stored embeddings, and show images of either side."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from qa.app import cached
from qa.app.state import dataset_key
from qa.dataset import Dataset, DatasetError

SOURCES = ("A split of this dataset", "A folder or file on the server", "An uploaded .zip")
# First choice when the health report's reference is configured (DATASET_QA_REFERENCE): the
# report's drift checks link here, and land on the same comparison.
REFERENCE_SOURCE = "The reference dataset (the report's)"
KEY_UPLOAD = "cmp_upload_extraction"  # this page's own extraction (the sidebar keeps its own)


@dataclass(frozen=True)
class Choice:
    """What to compare: A and B (datasets, or the same dataset with split ids), their cache
    keys and names."""

    a: Dataset
    b: Dataset
    key_a: str
    key_b: str
    names: tuple[str, str]
    splits: tuple[str, str] | None = None


@st.cache_resource(show_spinner="Loading the other dataset ...", max_entries=4)
def _load(path: str, signature: str, confine_to: str | None) -> Dataset:
    import qa

    return qa.load(path, confine_to=confine_to)


def _signature(path: Path) -> str:
    try:
        items = [path] + (sorted(path.iterdir()) if path.is_dir() else [])
        return ";".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in items)
    except OSError:
        return ""


def _other(path: Path, confine: Path | None, label: str) -> tuple[Dataset | None, str]:
    sig = _signature(path)
    try:
        return _load(str(path), sig, str(confine) if confine else None), f"cmp|{path}|{sig}"
    except DatasetError as e:
        st.error(f"Could not load {label}: {e}", icon=":material/error:")
    except Exception as e:  # keep the page alive, say what happened
        st.error(f"Could not load {label}: unexpected {type(e).__name__}: {e}",
                 icon=":material/error:")
    return None, ""


def _upload() -> tuple[Dataset | None, str, str]:
    from qa.app.picker import Extraction  # the sidebar's safe, session-bound extraction
    from qa.io.archive import extraction_folder

    up = st.file_uploader("Dataset B as .zip", type=["zip"], key="cmp_upload")
    if up is None:
        return None, "", ""
    data = up.getvalue()
    digest = hashlib.sha1(data).hexdigest()
    cur = st.session_state.get(KEY_UPLOAD)
    if cur is None or cur.digest != digest or not cur.folder.is_dir():
        if cur is not None:
            cur.remove()
        try:
            st.session_state[KEY_UPLOAD] = cur = Extraction(digest, data)
        except DatasetError as e:
            st.error(f"Could not load {up.name}: {e}", icon=":material/error:")
            return None, "", ""
    ds, key = _other(cur.folder, extraction_folder(cur.folder) or cur.folder, up.name)
    return ds, key, up.name


def choose(ds: Dataset) -> Choice | None:
    """The page's "compare with" widgets; None (with a sentence) until B is chosen."""
    from qa.drift import REFERENCE_ENV

    ref = os.environ.get(REFERENCE_ENV, "").strip()
    source = st.radio("Compare this dataset (A, the reference) with B:",
                      ((REFERENCE_SOURCE,) if ref else ()) + SOURCES, horizontal=True,
                      key="cmp_source")
    if source == REFERENCE_SOURCE:
        other, key = _other(Path(os.path.expanduser(ref)), None, ref)
        if other is None:
            return None
        st.caption(f"A = the reference dataset {ref} ({REFERENCE_ENV}), B = this dataset.")
        return Choice(other, ds, key, dataset_key(), (f"the reference ({other.name})",
                                                      f"this dataset ({ds.name})"))
    if source == SOURCES[0]:
        splits = list(ds.splits) + (["none"] if ds.images["split"].isna().any() else [])
        if len(splits) < 2:
            st.info(f"This dataset has {len(splits)} split(s) ({', '.join(splits) or 'none'}):"
                    " choose another dataset as B, or load one with train/val/test splits.")
            return None
        c1, c2 = st.columns(2)
        sa = c1.selectbox("A (reference)", splits, index=0, key="cmp_split_a")
        sb = c2.selectbox("B", splits, index=len(splits) - 1, key="cmp_split_b")
        if sa == sb:
            st.info("Choose two different splits.")
            return None
        return Choice(ds, ds, dataset_key(), dataset_key(), (sa, sb), splits=(sa, sb))
    if source == SOURCES[1]:
        text = st.text_input("Dataset B: a folder or labels file on the server",
                             key="cmp_path", placeholder="/data/new_batch")
        if not text.strip():
            st.info("Type the path of the dataset to compare with.")
            return None
        other, key = _other(Path(os.path.expanduser(text.strip())), None, text.strip())
        label = text.strip()
    else:
        other, key, label = _upload()
        if other is None and not label:
            st.info("Upload the dataset to compare with, as a .zip.")
    if other is None:
        return None
    name_a = ds.name or "A"
    name_b = other.name if other.name and other.name != name_a else Path(label).name or "B"
    if st.toggle("Use B as the reference instead", key="cmp_swap"):
        return Choice(other, ds, key, dataset_key(), (name_b, name_a))
    return Choice(ds, other, dataset_key(), key, (name_a, name_b))


def _embeddings(key: str, ds: Dataset):
    """The stored image embeddings of the default model (computes nothing), or None."""
    from qa.embeddings import ModelError

    try:
        spec = cached.model_spec("auto", None)
    except ModelError:
        return None
    emb = cached.stored_embeddings(key, ds, spec.model_id, "auto", None)
    return emb if len(emb) else None


def missing_embeddings(choice: Choice) -> int:
    """Images of A and B that could be read but have no stored embedding yet."""
    n = 0
    for key, ds in {(choice.key_a, id(choice.a)): (choice.key_a, choice.a),
                    (choice.key_b, id(choice.b)): (choice.key_b, choice.b)}.values():
        emb = _embeddings(key, ds)
        n += emb.n_not_cached if emb is not None else ds.n_images
    return n


def embed_both(choice: Choice):
    """A ``run(progress)`` for :func:`qa.app.widgets.embed_button`: embeds A, then B."""
    from qa.embeddings import embed_images

    def run(progress):
        done = None
        sides = [choice.a] if choice.splits else [choice.a, choice.b]
        for k, ds in enumerate(sides):
            done = embed_images(ds, progress=lambda f, m, k=k: progress(
                min(1.0, (k + f) / len(sides)), text=f"{ds.name}: {m}"))
        return done

    return run


@st.cache_data(show_spinner="Comparing ...", max_entries=8)
def compare(key_a: str, key_b: str, names: tuple, splits, n_emb: tuple, n_clusters,
            alpha: float, _choice: Choice):
    """:func:`qa.drift.compare_datasets` (or ``compare_subsets`` for splits) on the cached
    pixel passes and the stored embeddings (``n_emb`` keys the cache on their counts)."""
    import warnings

    from qa.drift import compare_datasets, compare_subsets, split_ids

    c = _choice
    opts = dict(names=names, n_clusters=n_clusters, alpha=alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if splits:
            return compare_subsets(c.a, split_ids(c.a, splits[0]), split_ids(c.a, splits[1]),
                                   stats=cached.image_stats(key_a, c.a),
                                   embeddings=_embeddings(key_a, c.a), **opts)
        ea, eb = _embeddings(key_a, c.a), _embeddings(key_b, c.b)
        if ea is None or eb is None:
            ea = eb = None
        return compare_datasets(c.a, c.b, stats_a=cached.image_stats(key_a, c.a),
                                stats_b=cached.image_stats(key_b, c.b), embeddings_a=ea,
                                embeddings_b=eb, **opts)


def run(choice: Choice, *, n_clusters=None, alpha: float = 0.05):
    """The comparison of ``choice`` (cached)."""
    n_emb = tuple(len(e) if e is not None else 0 for e in (
        _embeddings(choice.key_a, choice.a), _embeddings(choice.key_b, choice.b)))
    return compare(choice.key_a, choice.key_b, choice.names, choice.splits, n_emb, n_clusters,
                   alpha, choice)


@st.cache_data(show_spinner=False, max_entries=512)
def _thumb(key: str, _ds: Dataset, image_id: int):
    from qa.viz.boxes import render_image

    return render_image(_ds, int(image_id))


def gallery(ds: Dataset, key: str, image_ids, *, captions=None, columns: int = 6) -> None:
    """Thumbnails of ``image_ids`` of ``ds`` (either side: ``key`` is that side's cache
    key), with their boxes; a missing file shows its reason."""
    ids = [int(i) for i in image_ids]
    if not ids:
        st.caption("No images.")
        return
    names = dict(zip(ds.images["image_id"].tolist(), ds.images["file_name"].tolist()))
    cols = st.columns(columns)
    for i, iid in enumerate(ids):
        img, err = _thumb(key, ds, iid)
        cap = str(names.get(iid, f"image {iid}"))  # the file a user knows, not an internal id
        if captions and iid in captions:
            cap += f" — {captions[iid]}"
        cols[i % columns].image(img, caption=cap + (f" ({err})" if err else ""),
                                width="stretch")
