"""Figures of :mod:`qa.balance`: each takes a :class:`~qa.balance.BalanceResult` and returns a
``go.Figure`` (never draws). Large per-box tables are binned here with numpy so a figure holds
a few hundred numbers, not a million points.

``classes`` (names) restricts a figure to some classes; None = all (box histograms then show
all boxes pooled as one series, since 80 overlaid series are unreadable).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from qa.balance import (
    AREA_BUCKETS,
    COCO_MEDIUM_MAX_AREA,
    COCO_SMALL_MAX_AREA,
    BalanceResult,
)
from qa.dataset import ANNOTATOR, HEIGHT, NAME, SPLIT, WIDTH
from qa.viz.common import PALETTE, annotator_colors, class_colors, style

SPLIT_COLORS = {"train": PALETTE[0], "val": PALETTE[1], "test": PALETTE[2], "none": "#999999"}
RARE_COLOR = "#D55E00"  # vermillion: rare classes stand out against the blue bars
HIST_BINS = 40  # bins of the box histograms: smooth at 1e3 boxes, still detailed at 1e6


def _empty(message: str, *, title: str | None = None) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style(fig, title=title, height=250)


def _order(df, *, sort: str, value: str = "instances"):
    if sort not in ("count", "name"):
        raise ValueError(f"sort must be 'count' or 'name', got {sort!r}")
    if sort == "name":
        return df.sort_values(NAME, key=lambda s: s.astype(str).str.lower(), kind="stable")
    return df.sort_values(value, ascending=False, kind="stable")


def _select(df, classes: Sequence[str] | None):
    return df if classes is None else df[df[NAME].astype(str).isin([str(c) for c in classes])]


def class_bar(result: BalanceResult, *, sort: str = "count", log_y: bool = False,
              classes: Sequence[str] | None = None) -> go.Figure:
    """Instances per class; rare classes in vermillion, a dashed line at the rare threshold."""
    pc = _order(_select(result.per_class, classes), sort=sort)
    if pc.empty or result.n_annotations == 0:
        return _empty("No annotations to count.", title="Instances per class")
    fig = go.Figure(go.Bar(
        x=pc[NAME].astype(str), y=pc["instances"],
        marker_color=np.where(pc["is_rare"], RARE_COLOR, PALETTE[0]),
        customdata=np.stack([pc["images"], pc["share"] * 100], axis=1),
        hovertemplate="%{x}<br>%{y} instances<br>%{customdata[0]} images"
                      "<br>%{customdata[1]:.2f}% of instances<extra></extra>"))
    top = result.per_class["instances"].max()
    fig.add_hline(y=max(top * result.rare_fraction, 1e-9), line_dash="dash", line_color=RARE_COLOR,
                  annotation_text=f"{result.rare_fraction:.0%} of top class")
    fig.update_yaxes(type="log" if log_y else "linear", title="instances")
    fig.update_xaxes(title=None, categoryorder="array", categoryarray=pc[NAME].astype(str))
    return style(fig, title=f"Instances per class ({result.annotator or 'no annotator'})")


def split_bars(result: BalanceResult, *, normalize: bool = False, sort: str = "count",
               classes: Sequence[str] | None = None) -> go.Figure:
    """Instances per class stacked by split; ``normalize``: each class's split shares (0-1)."""
    ps = _select(result.per_split, classes)
    if ps.empty or result.n_annotations == 0:
        return _empty("No annotations per split.", title="Instances per split")
    order = _order(_select(result.per_class, classes), sort=sort)[NAME].astype(str).tolist()
    fig = go.Figure()
    tot = ps.groupby(NAME, sort=False)["instances"].transform("sum").to_numpy()
    for s in result.splits:
        part = ps[ps[SPLIT] == s]
        y = part["instances"].to_numpy()
        if normalize:
            t = tot[(ps[SPLIT] == s).to_numpy()]
            y = np.divide(y, t, out=np.zeros(len(y)), where=t > 0)
        fig.add_bar(x=part[NAME].astype(str), y=y, name=s,
                    marker_color=SPLIT_COLORS.get(s, PALETTE[len(fig.data) % len(PALETTE)]))
    fig.update_layout(barmode="stack", legend_title="split")
    fig.update_xaxes(categoryorder="array", categoryarray=order)
    fig.update_yaxes(title="share of the class" if normalize else "instances")
    return style(fig, title="Class instances per split")


def annotator_bars(result: BalanceResult, *, value: str = "share",
                   classes: Sequence[str] | None = None) -> go.Figure:
    """Each annotator's class distribution side by side; deviating cells are outlined and
    marked "!" (see ``annotator_comparison.is_deviant``)."""
    if value not in ("share", "instances"):
        raise ValueError(f"value must be 'share' or 'instances', got {value!r}")
    ac = _select(result.annotator_comparison, classes)
    if ac.empty:
        return _empty("One annotator: nothing to compare.", title="Annotators' class mix")
    colors = annotator_colors(sorted(ac[ANNOTATOR].astype(str).unique()))
    fig = go.Figure()
    for a, part in ac.groupby(ANNOTATOR, sort=True, observed=True):
        dev = part["is_deviant"].to_numpy()
        fig.add_bar(x=part[NAME].astype(str), y=part[value], name=str(a),
                    marker_color=colors[str(a)],
                    marker_line_width=np.where(dev, 3, 0), marker_line_color="black",
                    text=np.where(dev, "!", ""), textposition="outside",
                    customdata=np.stack([part["ratio_to_reference"], part["residual"]], axis=1),
                    hovertemplate="%{x}: %{y}<br>ratio to reference share %{customdata[0]:.2f}"
                                  "<br>residual %{customdata[1]:.1f}<extra>" + str(a) + "</extra>")
    fig.update_layout(barmode="group", legend_title="annotator")
    fig.update_yaxes(title="share of the annotator's labels" if value == "share" else "instances")
    return style(fig, title="Class distribution per annotator")


def _box_hist(result: BalanceResult, col: str, *, classes, bins: int, title: str, xtitle: str,
              log_x: bool = True) -> go.Figure:
    if result.boxes is None:
        return _empty("No boxes in this dataset (classification labels).", title=title)
    b = result.boxes
    v = b[col].to_numpy(dtype=np.float64)
    ok = np.isfinite(v) & ((v > 0) if log_x else True)
    if not ok.any():
        return _empty("No box values to show.", title=title)
    # uniform bins (of log10 v for log axes): np.histogram's fast path, no searchsorted
    t = np.log10(v, where=ok, out=np.full(len(v), np.nan)) if log_x else v
    lo, hi = float(t[ok].min()), float(t[ok].max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    if log_x:
        centres = 10**centres
    fig = go.Figure()
    if classes is None:
        counts, _ = np.histogram(t[ok], bins=bins, range=(lo, hi))
        fig.add_scatter(x=centres, y=counts, name="all boxes", mode="lines", line_shape="hvh",
                        fill="tozeroy", line_color=PALETTE[0])
    else:
        colors = class_colors(result.per_class[NAME].astype(str))
        codes = b[NAME].cat.codes.to_numpy()  # per_class order: compare ints, not strings
        index = {str(n): i for i, n in enumerate(b[NAME].cat.categories)}
        for c in classes:
            sel = ok & (codes == index.get(str(c), -1))
            counts, _ = np.histogram(t[sel], bins=bins, range=(lo, hi))
            fig.add_scatter(x=centres, y=counts, name=str(c), mode="lines", line_shape="hvh",
                            line_color=colors.get(str(c)))
    fig.update_xaxes(type="log" if log_x else "linear", title=xtitle)
    fig.update_yaxes(title="boxes")
    return style(fig, title=title)


def box_area_hist(result: BalanceResult, *, classes: Sequence[str] | None = None,
                  bins: int = HIST_BINS) -> go.Figure:
    """Box area (w*h, log scale) with the COCO small/medium/large limits at 32² and 96²."""
    fig = _box_hist(result, "area", classes=classes, bins=bins, xtitle="box area w*h (px², log)",
                    title="Box area (COCO buckets by box area)")
    if result.boxes is not None:
        for a, label in ((COCO_SMALL_MAX_AREA, "32²"), (COCO_MEDIUM_MAX_AREA, "96²")):
            fig.add_vline(x=a, line_dash="dot", line_color="gray", annotation_text=label)
    return fig


def area_bucket_bars(result: BalanceResult, *, classes: Sequence[str] | None = None,
                     sort: str = "count") -> go.Figure:
    """Small/medium/large boxes per class, stacked."""
    if result.box_stats is None:
        return _empty("No boxes in this dataset (classification labels).",
                      title="COCO size buckets")
    bs = _order(_select(result.box_stats, classes), sort=sort, value="boxes")
    fig = go.Figure([go.Bar(x=bs[NAME].astype(str), y=bs[k], name=k, marker_color=PALETTE[i])
                     for i, k in enumerate(AREA_BUCKETS)])
    fig.update_layout(barmode="stack", legend_title="by box area")
    fig.update_yaxes(title="boxes")
    return style(fig, title="COCO size buckets per class "
                            "(small < 32², medium < 96², by box area)")


def aspect_hist(result: BalanceResult, *, classes: Sequence[str] | None = None,
                bins: int = HIST_BINS) -> go.Figure:
    """Box aspect ratio w/h (log scale: 0.5 and 2 equally far from square)."""
    fig = _box_hist(result, "aspect", classes=classes, bins=bins, xtitle="aspect w/h (log)",
                    title="Box aspect ratio")
    if result.boxes is not None:
        fig.add_vline(x=1, line_dash="dot", line_color="gray")
    return fig


def rel_size_hist(result: BalanceResult, *, classes: Sequence[str] | None = None,
                  bins: int = HIST_BINS) -> go.Figure:
    """Relative box size sqrt(box area / image area)."""
    return _box_hist(result, "rel_size", classes=classes, bins=bins, log_x=False,
                     xtitle="sqrt(box area / image area)", title="Relative box size")


def center_heatmap(result: BalanceResult, *, classes: Sequence[str] | None = None) -> go.Figure:
    """Where box centres fall, in normalised image coordinates (top of the image at the top)."""
    title = "Box centres" + ("" if classes is None else f" ({', '.join(map(str, classes))[:60]})")
    if result.center_hist is None:
        return _empty("No boxes in this dataset (classification labels).", title=title)
    if classes is None:
        z = result.center_hist
    else:
        idx = np.flatnonzero(result.per_class[NAME].astype(str).isin([str(c) for c in classes]))
        z = result.center_hist_per_class[idx].sum(axis=0)
    n = z.shape[0]
    ax = (np.arange(n) + 0.5) / n
    fig = go.Figure(go.Heatmap(z=z, x=ax, y=ax, colorscale="Viridis", colorbar_title="boxes",
                               hovertemplate="x %{x:.2f}, y %{y:.2f}: %{z}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="y / height", scaleanchor="x", range=[1, 0])
    fig.update_xaxes(title="x / width", range=[0, 1])
    return style(fig, title=title, height=420)


def cooccurrence_heatmap(result: BalanceResult, *, classes: Sequence[str] | None = None,
                         normalize: bool = False) -> go.Figure:
    """Images containing both classes; ``normalize``: divided by the row class's image count
    (P(column class | row class) per image)."""
    co = result.cooccurrence
    if classes is not None:
        keep = [c for c in co.index if str(c) in {str(x) for x in classes}]
        co = co.loc[keep, keep]
    if co.empty or not co.to_numpy().any():
        return _empty("No class appears in any image.", title="Class co-occurrence")
    z = co.to_numpy().astype(np.float64)
    if normalize:
        d = np.diag(z).copy()
        z = np.divide(z, d[:, None], out=np.zeros_like(z), where=d[:, None] > 0)
    labels = [str(c) for c in co.index]
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=labels, colorscale="Blues",
        hovertemplate="%{y} & %{x}: %{z}<extra></extra>" if not normalize else
        "P(%{x} | %{y}) = %{z:.2f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    side = min(900, 250 + 12 * len(labels))
    return style(fig, title="Class co-occurrence (images with both)", height=side)


def objects_per_image_hist(result: BalanceResult) -> go.Figure:
    """How many images have 0, 1, 2, ... objects, per split (0 = empty image)."""
    pi = result.per_image
    if pi.empty:
        return _empty("No images.", title="Objects per image")
    fig = go.Figure()
    codes = pi[SPLIT].cat.codes.to_numpy()
    n_obj = pi["n_objects"].to_numpy()
    for k, s in enumerate(pi[SPLIT].cat.categories):
        counts = np.bincount(n_obj[codes == k])
        fig.add_bar(x=np.arange(len(counts)), y=counts, name=s,
                    marker_color=SPLIT_COLORS.get(s, PALETTE[len(fig.data) % len(PALETTE)]))
    fig.update_layout(barmode="stack", legend_title="split")
    fig.update_xaxes(title="objects in the image")
    fig.update_yaxes(title="images")
    return style(fig, title="Objects per image")


def resolution_scatter(result: BalanceResult) -> go.Figure:
    """Distinct image resolutions, marker area proportional to the number of images."""
    r = result.image_sizes
    if r.empty:
        return _empty("No image sizes known.", title="Image resolutions")
    size = 8 + 40 * np.sqrt(r["images"] / r["images"].max())
    fig = go.Figure(go.Scatter(
        x=r[WIDTH], y=r[HEIGHT], mode="markers", marker=dict(size=size, color=PALETTE[0],
                                                             opacity=0.6),
        customdata=r["images"], hovertemplate="%{x} x %{y}: %{customdata} images<extra></extra>"))
    fig.update_xaxes(title="width (px)")
    fig.update_yaxes(title="height (px)")
    return style(fig, title=f"Image resolutions ({len(r)} distinct)")


def image_aspect_hist(result: BalanceResult, *, bins: int = HIST_BINS) -> go.Figure:
    """Image aspect ratio width/height, weighted by the number of images per resolution."""
    r = result.image_sizes
    a = r["aspect"].to_numpy(dtype=np.float64)
    ok = np.isfinite(a)
    if not ok.any():
        return _empty("No image sizes known.", title="Image aspect ratio")
    counts, edges = np.histogram(a[ok], bins=bins, weights=r["images"].to_numpy()[ok])
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, marker_color=PALETTE[0],
                           width=np.diff(edges)))
    fig.update_xaxes(title="width / height")
    fig.update_yaxes(title="images")
    return style(fig, title="Image aspect ratio")


def balance_title(annotator: str | None, n_annotators: int) -> str:
    """The Class balance page's title, saying whose labels are counted."""
    from qa.balance import ALL_ANNOTATORS

    if n_annotators < 2 or annotator is None:
        return "Class balance"
    if annotator == ALL_ANNOTATORS:
        return f"Class balance: all {n_annotators} annotators pooled"
    return f"Class balance: {annotator}'s labels"
