"""Figures of :mod:`qa.selection` and :mod:`qa.partition`: the embedding map of labelled,
picked and pool images, coverage before and after, and class shares per split before and
after a proposed split. Each returns a ``go.Figure`` (never draws)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from qa.viz.common import PALETTE, style

# labelled grey, the pool light, skipped copies orange, picks vermillion (Okabe-Ito)
STATUS_STYLE = {
    "labelled": dict(color="#9E9E9E", size=6, symbol="circle"),
    "other": dict(color="#DDDDDD", size=5, symbol="circle"),
    "pool": dict(color="#56B4E9", size=6, symbol="circle"),
    "skipped": dict(color="#E69F00", size=9, symbol="x"),
    "picked": dict(color="#D55E00", size=12, symbol="star"),
}
# Points drawn at most per status except picks (a scatter of 1M points helps nobody).
MAX_POINTS = 5_000


def selection_map(map_df: pd.DataFrame, image_ids, status, *, ranks=None, note: str = "",
                  seed: int = 0) -> go.Figure:
    """The 2-D embedding map (``map_df`` from :func:`qa.outliers.embedding_map`: row, x, y,
    rows indexing ``image_ids`` / ``status``) coloured labelled / pool / skipped / picked;
    picks are numbered by rank. Each point carries its image id as ``customdata``."""
    ids = np.asarray(image_ids)[map_df["row"].to_numpy()]
    st = np.asarray(status, dtype=object)[map_df["row"].to_numpy()]
    rk = ({} if ranks is None else dict(ranks))
    fig = go.Figure()
    rng = np.random.default_rng(seed)
    for name, mk in STATUS_STYLE.items():
        m = np.flatnonzero(st == name)
        if not len(m):
            continue
        shown = m if name == "picked" or len(m) <= MAX_POINTS else np.sort(
            rng.choice(m, MAX_POINTS, replace=False))
        label = f"{name} ({len(m):,}" + (f", {len(shown):,} drawn)" if len(shown) < len(m)
                                         else ")")
        text = [str(rk.get(int(i), "")) for i in ids[shown]] if name == "picked" else None
        fig.add_trace(go.Scattergl(
            x=map_df["x"].to_numpy()[shown], y=map_df["y"].to_numpy()[shown],
            mode="markers+text" if text else "markers", text=text,
            textposition="top center", textfont=dict(size=10, color=mk["color"]),
            customdata=ids[shown], name=label, marker=dict(**mk),
            hovertemplate=f"#%{{customdata}} ({name})<extra></extra>"))
    fig.update_xaxes(showticklabels=False, title=None)
    fig.update_yaxes(showticklabels=False, title=None)
    fig.update_layout(legend=dict(orientation="h", y=-0.05))
    return style(fig, title=f"Embedding map ({note})" if note else "Embedding map", height=500)


def coverage_hist(pool: pd.DataFrame, *, bins: int = 40) -> go.Figure:
    """How far the pool images are from the nearest labelled image, before and after
    labelling the picks (``pool`` = ``SelectionResult.pool``; lower = better covered)."""
    fig = go.Figure()
    for col, name, color in (("distance_to_labelled", "before", PALETTE[4]),
                             ("distance_after", "after labelling the picks", PALETTE[5])):
        v = pool[col].dropna()
        if len(v):
            fig.add_trace(go.Histogram(x=v, nbinsx=bins, name=f"{name} (mean {v.mean():.3f})",
                                       marker_color=color, opacity=0.6))
    fig.update_layout(barmode="overlay", legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title="distance to the nearest labelled image (embeddings; lower = "
                           "better covered)")
    fig.update_yaxes(title="pool images")
    return style(fig, title="Coverage of the pool", height=320)


def uncertainty_hist(pool: pd.DataFrame, *, bins: int = 30) -> go.Figure:
    """The pool's uncertainty, the picks stacked in their own colour."""
    fig = go.Figure()
    picked = pool["status"] == "picked"
    for m, name, color in ((~picked, "pool", STATUS_STYLE["pool"]["color"]),
                           (picked, "picked", STATUS_STYLE["picked"]["color"])):
        v = pool.loc[m, "uncertainty"].dropna()
        if len(v):
            fig.add_trace(go.Histogram(x=v, nbinsx=bins, name=name, marker_color=color))
    fig.update_layout(barmode="stack", legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title="the model's uncertainty (higher = less sure)")
    fig.update_yaxes(title="images")
    return style(fig, title="Uncertainty of the pool", height=320)


def share_chart(shares: pd.DataFrame) -> go.Figure:
    """Each class's share of each split's instances, before and after the proposed split
    (``SplitProposal.shares``), against the whole dataset's share (black ticks)."""
    whens = [w for w in ("before", "after") if shares[w].notna().any()]
    fig = make_subplots(rows=1, cols=len(whens), shared_yaxes=True,
                        subplot_titles=[f"{w} ({_dev(shares, w):.1f} points off at most)"
                                        for w in whens])
    splits = list(dict.fromkeys(shares["split"]))
    for c, w in enumerate(whens, start=1):
        for k, s in enumerate(splits):
            d = shares[shares["split"] == s]
            fig.add_trace(go.Bar(x=d["name"], y=100 * d[w], name=s, legendgroup=s,
                                 showlegend=c == 1, marker_color=PALETTE[k % len(PALETTE)],
                                 hovertemplate=f"{s}: %{{x}} %{{y:.1f}}%<extra></extra>"),
                          row=1, col=c)
        whole = shares.drop_duplicates("name")
        fig.add_trace(go.Scatter(x=whole["name"], y=100 * whole["whole"], mode="markers",
                                 marker=dict(symbol="line-ew-open", size=28, color="black",
                                             line=dict(width=3)),
                                 name="whole dataset", showlegend=c == 1,
                                 hovertemplate="whole: %{x} %{y:.1f}%<extra></extra>"),
                      row=1, col=c)
    fig.update_yaxes(title="share of the split's instances (%)", col=1)
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.15))
    return style(fig, title="Class mix per split", height=380)


def _dev(shares: pd.DataFrame, when: str) -> float:
    d = (shares[when] - shares["whole"]).abs().dropna()
    return float(100 * d.max()) if len(d) else float("nan")


__all__ = ["coverage_hist", "selection_map", "share_chart", "uncertainty_hist"]
