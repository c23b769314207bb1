"""Figures of model-vs-label disagreement (:mod:`qa.disagreement`) and detection metrics
(:mod:`qa.evaluation`). Functions return plotly figures; they never draw on a page."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from qa.disagreement import KIND_TITLES, KINDS
from qa.viz.common import PALETTE, class_colors, style

KIND_COLORS = dict(zip(KINDS, PALETTE))


def count_text(value: float, estimated: bool) -> str:
    """A count for a person: "24", or "≈ 30.9" (an estimate, one decimal)."""
    return f"≈ {value:,.1f}" if estimated else f"{int(round(value)):,}"


def headline(result) -> list[tuple[str, str, str]]:
    """The page's headline metrics of a :class:`qa.disagreement.DisagreementResult`:
    (label, value, help) for flagged images, likely label errors and likely model misses
    (each saying how it was decided), then the flags per kind."""
    m, cc = result.metrics(), result.cause_counts()
    est = cc["estimated"]
    how = "Estimated (no box embeddings decide the unsupported boxes). " if est else "Counted. "
    out = [("Flagged images", f"{m['n_flagged_images']:,}",
            f"{(m['flagged_image_share'] or 0):.1%} of the images judged; "
            f"≈ {m['n_label_error_images']:.1f} of them hold a likely label error"),
           ("Likely label errors", count_text(cc["label_errors"], est), how + cc["basis"]),
           ("Likely model misses", count_text(cc["model_misses"], est),
            how + "Boxes no prediction supports although the object is probably there: the "
                  "model's recall, not the labels, is at fault.")]
    kinds = ["label_issue"] if result.is_classification else list(KIND_TITLES)[:5]
    c = result.counts()
    out += [(KIND_TITLES[k].capitalize(), f"{c[k]:,}", "") for k in kinds]
    return out


def flag_counts(per_class: pd.DataFrame) -> go.Figure:
    """Stacked bars: flags per class (x) and kind (colour), from ``result.per_class``."""
    fig = go.Figure()
    kinds = [k for k in KINDS if k in per_class.columns]
    for k in kinds:
        fig.add_bar(x=per_class["name"], y=per_class[k], name=KIND_TITLES[k],
                    marker_color=KIND_COLORS[k],
                    hovertemplate="%{x}: %{y} " + KIND_TITLES[k] + "<extra></extra>")
    fig.update_layout(barmode="stack", xaxis_title="class (the label's; the model's for a "
                      "missing label)", yaxis_title="flags", legend_title="kind")
    return style(fig, title="Flags by type and class", height=360)


def pr_curves(curves: pd.DataFrame) -> go.Figure:
    """One precision-recall curve per class (COCO's interpolated curve at IoU 0.5)."""
    fig = go.Figure()
    colors = class_colors(pd.unique(curves["name"])) if len(curves) else {}
    for name, c in curves.groupby("name", sort=False):
        fig.add_scatter(x=c["recall"], y=c["precision"], mode="lines", name=str(name),
                        line={"color": colors.get(str(name)), "shape": "hv"},
                        customdata=c["score"],
                        hovertemplate=(f"{name}<br>recall %{{x:.2f}}<br>precision %{{y:.3f}}"
                                       "<br>score %{customdata:.2f}<extra></extra>"))
    fig.update_xaxes(title="recall", range=[0, 1.01])
    fig.update_yaxes(title="precision", range=[0, 1.02])
    return style(fig, title="Precision-recall at IoU 0.5", height=380)


def confusion_heatmap(confusion: pd.DataFrame) -> go.Figure:
    """Labels (rows) x predictions (columns) counts, background included."""
    z = confusion.to_numpy()
    fig = go.Figure(go.Heatmap(
        z=z, x=list(confusion.columns), y=list(confusion.index), text=z,
        texttemplate="%{text}", colorscale="Blues", colorbar={"title": "boxes"},
        hovertemplate="label %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="label (reference)")
    fig.update_xaxes(title="prediction", side="bottom")
    n = len(confusion)
    return style(fig, title="Confusion matrix (IoU 0.5, background included)",
                 height=160 + 45 * n)


__all__ = ["confusion_heatmap", "count_text", "flag_counts", "headline", "pr_curves"]
