"""Cached wrappers for the "Select & split" page (the pattern of :mod:`qa.app.cached`: the
first argument is the dataset key, underscore arguments are not hashed)."""

from __future__ import annotations

import streamlit as st

from qa.dataset import Dataset


def duplicates_or_none(key: str, ds: Dataset):
    """The perceptual near-duplicate clusters (cached by :func:`qa.app.cached.duplicates`),
    or None when the dataset has no image files to compare."""
    if ds.root is None or ds.images.empty:
        return None
    from qa.app import cached

    return cached.duplicates(key, ds, "phash", None)


def stored_image_embeddings(key: str, ds: Dataset):
    """(the default model's stored image embeddings or None, how many images are not
    embedded yet, a sentence on what is missing or None). Never embeds."""
    if ds.root is None:
        return None, 0, None
    from qa.app import cached
    from qa.embeddings import ModelError

    try:
        spec = cached.model_spec("auto", None)
        emb = cached.stored_embeddings(key, ds, spec.model_id, "auto", None)
    except ModelError as e:
        return None, 0, f"No embeddings: {e}"
    missing = max(ds.n_images - len(emb) - len(emb.failed), 0)
    why = (f"{missing:,} images are not embedded: diversity and the map need embeddings."
           if missing else None)
    return emb, missing, why


@st.cache_data(show_spinner="Choosing what to label ...", max_entries=16)
def selection(key: str, _ds: Dataset, pool: str, strategy: str, budget: int, measure: str,
              aggregate: str, rare_weight: float, model_id: str, n_vectors: int, _emb=None):
    """:func:`qa.selection.select_for_labelling` on a named pool (keyed by the options and
    the embedding model and count)."""
    from qa.selection import pool_presets, select_for_labelling

    pool_ids, labelled = pool_presets(_ds)[pool]
    return select_for_labelling(_ds, budget, strategy=strategy, pool=pool_ids,
                                labelled=labelled, embeddings=_emb if n_vectors else None,
                                duplicates=duplicates_or_none(key, _ds), measure=measure,
                                aggregate=aggregate, rare_weight=rare_weight)


@st.cache_data(show_spinner="Preparing the downloads ...", max_entries=16)
def selection_files(key: str, _ds: Dataset, _res, options: tuple) -> dict:
    """:func:`qa.selection.selection_files` of a cached selection (``options`` keys it)."""
    from qa.selection import selection_files as files

    return files(_ds, _res)


@st.cache_data(show_spinner="Proposing a split ...", max_entries=16)
def split_proposal(key: str, _ds: Dataset, fractions: tuple, keep_existing: bool,
                   tolerance: float):
    """:func:`qa.partition.propose_split` with the page's options (``fractions`` empty: the
    default, which for keep_existing is the current split's own shares)."""
    from qa.partition import propose_split

    return propose_split(_ds, dict(fractions) or None, duplicates=duplicates_or_none(key, _ds),
                         keep_existing=keep_existing, tolerance=tolerance)
