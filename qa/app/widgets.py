"""Reusable widgets for the pages: the image gallery with box overlays and legends."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from qa.dataset import Dataset
from qa.viz.common import PREDICTION_COLOR, annotator_colors, class_colors


@st.cache_data(show_spinner=False, max_entries=2048)
def _thumbnail(key: str, _ds: Dataset, image_id: int, annotators: tuple | None,
               show_predictions: bool, highlight_key: str | None, _highlight: tuple | None,
               color_by: str = "annotator"):
    """``highlight_key`` stands for ``_highlight`` (a digest made once per gallery: hashing
    the whole tuple again for each thumbnail cost a second per rerun on a large page)."""
    from qa.viz.boxes import render_image

    return render_image(_ds, image_id, annotators=annotators, show_predictions=show_predictions,
                        highlight_ann_ids=_highlight, color_by=color_by)


def annotator_legend(ds: Dataset, annotators=None, *, show_predictions: bool = False,
                     by_class: bool = False) -> None:
    """One coloured chip per annotator (per class with ``by_class``) and predictions, as a
    markdown line."""
    if by_class:
        names = sorted({str(v) for v in ds.category_names.values()})
        colors = class_colors(names)
    else:
        colors = annotator_colors(ds.annotators)
        names = [a for a in ds.annotators if annotators is None or a in annotators]
    chips = [f"<span style='color:{colors[a]}'>&#9632;</span> {a}" for a in names]
    if show_predictions:
        chips.append(f"<span style='color:{PREDICTION_COLOR}'>&#9633;</span> predictions")
    st.markdown(" &nbsp; ".join(chips), unsafe_allow_html=True)


def image_gallery(ds: Dataset, image_ids, *, key: str, captions=None, annotators=None,
                  highlight_ann_ids=None, max_images: int = 24, columns: int = 4,
                  show_predictions: bool = False) -> None:
    """A grid of thumbnails with each annotator's boxes in its own colour.

    ``captions``: dict image_id -> text (or a list aligned with image_ids). Missing or corrupt
    files show a placeholder with the reason; the gallery never fails on one bad image.
    """
    from qa.app.state import dataset_key

    ids = [int(i) for i in list(image_ids)]
    if not ids:
        st.caption("No images to show.")
        return
    if isinstance(captions, (list, tuple)):
        captions = dict(zip(ids, captions))
    captions = captions or {}
    total = len(ids)
    pages = max(1, -(-total // max_images))
    page = 1
    if pages > 1:
        page = st.number_input(f"Page (of {pages}, {total} images)", min_value=1, max_value=pages,
                               value=1, step=1, key=f"{key}_page")
    shown = ids[(page - 1) * max_images: page * max_images]
    # one annotator: colour says nothing unless it means the class (a one-colour gallery)
    by_class = len(ds.annotators) <= 1 or st.toggle(
        "Colour boxes by class", value=False, key=f"{key}_by_class",
        help="Off: one colour per annotator. On: one colour per class.")
    annotator_legend(ds, annotators, show_predictions=show_predictions, by_class=by_class)
    hl = tuple(sorted(int(a) for a in highlight_ann_ids)) if highlight_ann_ids is not None else None
    hl_key = None if hl is None else hashlib.sha1(np.asarray(hl, dtype=np.int64)).hexdigest()
    ann_key = tuple(annotators) if annotators is not None else None
    names = dict(zip(ds.images["image_id"].tolist(), ds.images["file_name"].tolist()))
    for i, iid in enumerate(shown):
        if i % columns == 0:  # one row of columns at a time: a ranked list reads in rank
            cols = st.columns(columns)  # order, left to right, row by row (no masonry)
        img, err = _thumbnail(dataset_key(), ds, iid, ann_key, show_predictions, hl_key, hl,
                              "class" if by_class else "annotator")
        cap = str(names.get(iid, f"image {iid}"))  # the file a user knows, not an internal id
        if iid in captions:
            cap += f" — {captions[iid]}"
        if err:
            cap += f" ({err})"
        with cols[i % columns]:
            st.image(img, caption=cap, width="stretch")


def object_gallery(ds: Dataset, ann_ids, *, key: str, captions=None, columns: int = 6,
                   max_objects: int = 30) -> None:
    """The boxes themselves, in the given order: each cropped with some context and
    highlighted (:func:`qa.viz.boxes.render_object`), row by row. ``captions``: ann_id ->
    text."""
    from qa.viz.boxes import render_object

    ids = [int(a) for a in list(ann_ids)][:max_objects]
    if not ids:
        st.caption("No boxes to show.")
        return
    captions = captions or {}
    for i, a in enumerate(ids):
        if i % columns == 0:
            cols = st.columns(columns)
        img, err = render_object(ds, a)
        with cols[i % columns]:
            if img is None:
                st.caption(f"box #{a}: {err}")
            else:
                st.image(img, caption=captions.get(a, f"box #{a}") + (f" ({err})" if err
                                                                       else ""),
                         width="stretch")


def linked_evidence(ds: Dataset, *, key: str, hints: dict[str, str] | None = None) -> list | None:
    """What a deep link (a report check's "open evidence", a review item) asks this page to
    show, shown first: a note naming the kind, the linked images with their boxes, and a
    button back to the whole page. ``hints``: kind -> where on this page that evidence is (for
    dataset-level findings, which link without images). Returns the linked image ids (None
    without a link), so the page can narrow its own tables too."""
    from qa.app.state import clear_focus, focus

    ids, kind = focus()
    if not ids and not kind:
        return None
    hint = (hints or {}).get(kind or "")
    what = f" ({kind.replace('_', ' ')})" if kind else ""
    if ids:
        st.info(f"Showing the evidence of a link{what}: {len(ids)} image(s)."
                + (f" {hint}" if hint else ""), icon=":material/link:")
        image_gallery(ds, ids, key=f"{key}_linked", max_images=8)
    else:
        st.info(f"Linked evidence{what}: {hint or 'see below.'}", icon=":material/link:")
    st.button("Show the whole dataset", on_click=clear_focus, key=f"{key}_clear_focus")
    return ids


def embed_button(label: str, *, key: str, run, **button_kw) -> None:
    """A button that embeds (``run(progress)`` with a progress bar), keeps the vectors and
    reruns the page so it reads them from the store; a model that cannot load is shown as an
    error, not a traceback."""
    if not st.button(label, key=key, **button_kw):
        return
    from qa.app import cached
    from qa.embeddings import ModelError

    bar = st.progress(0.0, text="Starting ...")
    try:
        done = run(bar.progress)
    except ModelError as e:
        st.error(str(e))
        st.stop()
    cached.stored_embeddings.clear()
    from qa.app.state import current_dataset

    if current_dataset() is not None:  # results that read embeddings are stale now
        cached.forget_embedding_results(current_dataset())
    from qa.embeddings import embedding_summary

    msg = embedding_summary(done) if hasattr(done, "failed") else \
        f"{done.n_computed:,} computed, {done.n_cached:,} from the cache"
    st.session_state[f"{key}_summary"] = msg  # shown after the rerun (embed_summary)
    st.toast(msg)
    st.rerun()


def embed_summary(key: str) -> None:
    """What the last press of the embed button ``key`` did (counts, unreadable files named),
    kept across the rerun that follows it."""
    msg = st.session_state.get(f"{key}_summary")
    if msg:
        st.success(msg)


def embed_images_control(ds: Dataset, emb, *, key: str, run) -> None:
    """The images' embedding state and button: what the last press did, a button for the
    images not embedded yet (the same images its progress counts; files already known to be
    unreadable are left out), and a stop with the reason when there is nothing to show yet."""
    from qa.outliers import embedding_shortfall

    missing, why = embedding_shortfall(emb, ds.n_images)
    embed_summary(key)
    if missing > 0:
        embed_button(f"Embed {missing:,} images", key=key, type="primary", run=run,
                     help=f"{ds.n_images:,} images: {len(emb):,} embedded already, "
                          f"{len(emb.failed):,} unreadable (see 'Not embedded').")
    if why:
        st.info(why[0].upper() + why[1:] + (": press the button." if missing else
                                             "; see the validation table on the Overview page."))
        st.stop()
    if missing > 0:
        st.warning(f"{missing:,} images are not embedded yet; the results below leave them out.")
