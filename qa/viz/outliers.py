"""Figures of :mod:`qa.outliers`: the embedding map and the score distribution. Each returns a
``go.Figure`` (never draws)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from qa.outliers import OutliersResult
from qa.viz.common import PALETTE, style

COLOR_BY = ("outlier score", "class", "split", "annotator")
OUTLIER_COLOR = "#D55E00"  # vermillion ring around flagged images on the map
SCORE_SCALE = "Viridis"


def outlier_map(map_df: pd.DataFrame, res: OutliersResult, attributes: pd.DataFrame, *,
                color_by: str = "outlier score", note: str = "") -> go.Figure:
    """The 2-D map (``map_df`` from :func:`qa.outliers.embedding_map`: row, x, y; rows index
    ``res.per_image``) coloured by ``color_by``; flagged images are ringed. Each point carries
    its image_id as ``customdata`` so a click can show the image."""
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}")
    per = res.per_image.iloc[map_df["row"].to_numpy()].reset_index(drop=True)
    attrs = attributes.set_index("image_id").reindex(per["image_id"]).reset_index()
    df = pd.concat([map_df.reset_index(drop=True)[["x", "y"]], per, attrs.drop(
        columns=["image_id"])], axis=1)
    hover = ("#%{customdata[0]} %{customdata[1]}<br>score %{customdata[2]:.3g} "
             "(rank %{customdata[3]})<extra></extra>")
    custom = np.stack([df["image_id"], df["file_name"].astype(str), df["score"], df["rank"]],
                      axis=1)
    fig = go.Figure()
    if color_by == "outlier score":
        fig.add_trace(go.Scattergl(
            x=df["x"], y=df["y"], mode="markers", customdata=custom, hovertemplate=hover,
            marker=dict(size=7, color=df["score"], colorscale=SCORE_SCALE, showscale=True,
                        colorbar=dict(title="score")), name="images", showlegend=False))
    else:
        groups = df[color_by].astype(str)
        for i, g in enumerate(sorted(groups.unique())):
            m = (groups == g).to_numpy()
            fig.add_trace(go.Scattergl(
                x=df["x"][m], y=df["y"][m], mode="markers", customdata=custom[m],
                hovertemplate=hover, name=g,
                marker=dict(size=7, color=PALETTE[i % len(PALETTE)])))
    flag = df["is_outlier"].to_numpy(bool)
    if flag.any():
        fig.add_trace(go.Scattergl(
            x=df["x"][flag], y=df["y"][flag], mode="markers", customdata=custom[flag],
            hovertemplate=hover, name="flagged outlier",
            marker=dict(size=13, color="rgba(0,0,0,0)", line=dict(color=OUTLIER_COLOR,
                                                                   width=2))))
    fig.update_xaxes(showticklabels=False, title=None)
    fig.update_yaxes(showticklabels=False, title=None)
    fig.update_layout(legend=dict(orientation="h", y=-0.05), clickmode="event+select")
    return style(fig, title=f"Embedding map ({note})" if note else "Embedding map", height=520)


def score_histogram(res: OutliersResult, *, bins: int = 40) -> go.Figure:
    """Distribution of the outlier scores with the flag threshold (Tukey's fence) drawn."""
    s = res.per_image["score"].dropna()
    fig = go.Figure(go.Histogram(x=s, nbinsx=bins, marker_color=PALETTE[0], name="images"))
    if np.isfinite(res.fence):
        fig.add_vline(x=res.fence, line_dash="dash", line_color=OUTLIER_COLOR,
                      annotation_text=f"flag above {res.fence:.3g}",
                      annotation_position="top left")
    fig.update_xaxes(title=f"{res.method} score (higher = more unusual)")
    fig.update_yaxes(title="images")
    return style(fig, title="Outlier scores", height=300)


def class_outlier_captions(flagged_class: pd.DataFrame) -> dict[int, str]:
    """ann_id -> "train/000078.jpg: circle, looks like square (2.1x spread)" for a crop gallery.

    Named by file, as every finding is: an internal image id reads as a file number.
    """
    out = {}
    for r in flagged_class.itertuples(index=False):
        if pd.isna(r.ann_id):
            continue
        like = f", looks like {r.nearest_name}" if r.nearest_name != r.name else ""
        out[int(r.ann_id)] = f"{r.file_name}: {r.name}{like} ({r.excess:.1f}x spread)"
    return out


def ranked_captions(flagged: pd.DataFrame) -> dict[int, str]:
    """image_id -> "rank 3, score 0.412, blank frame" for the ranked-outlier gallery."""
    kinds = flagged["kind"] if "kind" in flagged else pd.Series(None, index=flagged.index)
    return {int(i): f"rank {r}, score {s:.3g}" + (f", {k}" if isinstance(k, str) and k else "")
            for i, r, s, k in zip(flagged["image_id"], flagged["rank"], flagged["score"], kinds)}
