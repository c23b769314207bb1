"""Figures of the Duplicates & leakage page."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from qa.viz.common import PALETTE, style

# Split badge colours (Streamlit badge colour names), one per split.
SPLIT_BADGE = {"train": "blue", "val": "orange", "test": "violet"}


def split_badge(split) -> str:
    """A Streamlit markdown badge for a split (grey for none)."""
    name = "no split" if split is None or pd.isna(split) else str(split)
    return f":{SPLIT_BADGE.get(name, 'gray')}-badge[{name}]"


def similarity_hist(result, *, threshold: float | None = None) -> go.Figure:
    """Histogram of the pairs' similarity by method, with the threshold drawn."""
    fig = go.Figure()
    pairs = result.pairs
    for k, (method, grp) in enumerate(pairs.groupby("method", sort=True)):
        fig.add_trace(go.Histogram(x=grp["similarity"], name=f"{method} ({len(grp)})",
                                   marker_color=PALETTE[k % len(PALETTE)], nbinsx=40,
                                   opacity=0.8))
    thr = threshold if threshold is not None else result.threshold
    if thr is not None:
        fig.add_vline(x=thr, line_dash="dash", line_color="#D55E00",
                      annotation_text=f"threshold {thr:.3f}", annotation_position="top left")
    if pairs.empty:
        fig.add_annotation(text="No pairs at this threshold", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    fig.update_layout(barmode="overlay", xaxis_title="similarity (1 = identical)",
                      yaxis_title="pairs", legend_title="method")
    return style(fig, title="Similarity of the pairs found", height=300)


def cluster_size_bar(result) -> go.Figure:
    """Clusters by size, split-crossing ones apart."""
    c = result.clusters
    fig = go.Figure()
    if not c.empty:
        g = c.groupby("cluster_id").agg(size=("image_id", "size"),
                                        splits=("split", lambda s: s.dropna().nunique()))
        for crossing, color in ((False, PALETTE[0]), (True, "#D55E00")):
            sub = g[(g["splits"] > 1) == crossing]["size"].value_counts().sort_index()
            fig.add_trace(go.Bar(x=sub.index, y=sub.values, marker_color=color,
                                 name="across splits" if crossing else "within a split"))
    fig.update_layout(barmode="stack", xaxis_title="images in the cluster",
                      yaxis_title="clusters", xaxis_dtick=1)
    return style(fig, title="Cluster sizes", height=300)
