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
    """Histogram of the candidate pairs' similarity: the duplicates found (by the method that
    proposed them) and the candidates the pixels rejected, on fixed bins of 0.005 over the
    range the candidates span (one pair is one thin bar, never a block filling the axis),
    with the threshold drawn."""
    fig = go.Figure()
    found = result.near_pairs
    rejected = getattr(result, "rejected", None)
    series = [(f"duplicate: {m}", g["similarity"]) for m, g in found.groupby(
        found["proposed_by"] if "proposed_by" in found else found["method"], sort=True)]
    if rejected is not None and len(rejected):
        series.append(("rejected on the pixels", rejected["similarity"]))
    thr = threshold if threshold is not None else result.threshold
    lows = [float(x.min()) for _, x in series if len(x)] + ([thr] if thr is not None else [])
    lo = max(0.0, min(lows) - 0.01) if lows else 0.8
    for k, (name, x) in enumerate(series):
        fig.add_trace(go.Histogram(x=x, name=f"{name} ({len(x)})", opacity=0.8,
                                   xbins=dict(start=lo, end=1.0 + 1e-9, size=0.005),
                                   marker_color="#999999" if name.startswith("rejected")
                                   else PALETTE[k % len(PALETTE)]))
    if thr is not None:
        fig.add_vline(x=thr, line_dash="dash", line_color="#D55E00")
        fig.add_annotation(x=thr, y=1.0, xref="x", yref="paper", yanchor="bottom",
                           xanchor="left", showarrow=False, text=f" candidates ≥ {thr:.3f}",
                           font=dict(size=11, color="#D55E00"))
    if not series:
        fig.add_annotation(text="No near-duplicate candidates", showarrow=False, x=0.5,
                           y=0.5, xref="paper", yref="paper")
    # thousands of rejected look-alikes next to a handful of duplicates: bars overlaid (not
    # stacked) on a log scale, so that one duplicate is one visible bar
    many = sum(len(x) for _, x in series) > 50
    fig.update_xaxes(range=[lo, 1.0 + 0.005], title="similarity (1 = identical)")
    fig.update_yaxes(type="log" if many else "linear", title="pairs")
    fig.update_layout(barmode="overlay")
    style(fig, title="Similarity of the candidate pairs", height=400)
    # the legend under the plot: a half-width column keeps its width for the bars
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.25, x=0,
                                  font=dict(size=11)), margin=dict(b=90))
    return fig


def cluster_size_bar(result) -> go.Figure:
    """Clusters by size, split-crossing ones apart (bars one image wide, whatever the count)."""
    c = result.clusters
    fig = go.Figure()
    top = 2
    if not c.empty:
        g = c.groupby("cluster_id").agg(size=("image_id", "size"),
                                        splits=("split", lambda s: s.dropna().nunique()))
        top = int(g["size"].max())
        for crossing, color in ((False, PALETTE[0]), (True, "#D55E00")):
            sub = g[(g["splits"] > 1) == crossing]["size"].value_counts().sort_index()
            fig.add_trace(go.Bar(x=sub.index, y=sub.values, marker_color=color, width=0.6,
                                 name="across splits" if crossing else "within a split"))
    fig.update_xaxes(range=[1.4, max(top, 4) + 0.6], dtick=1, title="images in the cluster")
    fig.update_layout(barmode="stack", yaxis_title="clusters")
    return style(fig, title="Cluster sizes", height=300)
