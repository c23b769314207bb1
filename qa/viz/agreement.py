"""Figures of inter-annotator agreement (:mod:`qa.agreement`). Functions return plotly figures
or pandas Stylers; they never draw on a page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from qa.agreement import (
    IOU_GUIDELINES_MIN,
    IOU_TARGET,
    MASK_IOU_TARGET,
    AgreementResult,
)
from qa.viz.common import annotator_colors, style

GOOD, WARN, BAD = "#c7e9c0", "#fdd0a2", "#fcbba1"  # scorecard cell backgrounds
PAIR_METRICS = {"f1": "F1 at the IoU threshold", "mean_iou": "Mean IoU of matched boxes",
                "kappa": "Cohen's kappa"}
RECALL_TARGET, RECALL_MIN = 0.95, 0.85  # share of consensus objects an annotator should find
LABEL_MISMATCH_TARGET, LABEL_MISMATCH_MAX = 0.02, 0.05  # label errors a QA lead tolerates
KAPPA_TARGET, KAPPA_MIN = 0.80, 0.60  # Landis & Koch: almost perfect / below substantial


def pair_heatmap(result: AgreementResult, metric: str = "f1") -> go.Figure:
    """Annotator x annotator heatmap of a pairwise ``metric`` (f1, mean_iou, kappa), symmetric,
    diagonal left blank (kappa: 1)."""
    if metric not in PAIR_METRICS:
        raise ValueError(f"metric must be one of {list(PAIR_METRICS)}, got {metric!r}.")
    names = list(result.annotators)
    mat = pd.DataFrame(np.nan, index=names, columns=names)
    if metric in result.pairwise:
        for row in result.pairwise.itertuples(index=False):
            v = getattr(row, metric)
            mat.loc[row.annotator_a, row.annotator_b] = v
            mat.loc[row.annotator_b, row.annotator_a] = v
    text = mat.map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    zmin = -1.0 if metric == "kappa" else 0.0
    fig = go.Figure(go.Heatmap(z=mat.to_numpy(), x=names, y=names, text=text.to_numpy(),
                               texttemplate="%{text}", zmin=zmin, zmax=1.0,
                               colorscale="RdYlGn", colorbar={"title": metric},
                               hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return style(fig, title=PAIR_METRICS[metric], height=120 + 50 * len(names))


def class_agreement_bars(result: AgreementResult) -> go.Figure:
    """Per-class agreement: F1 and mean IoU of matched boxes (boxes), or specific agreement
    (classification), plus Fleiss' per-category kappa; lowest first."""
    df = result.per_class
    fig = go.Figure()
    if df.empty:
        return style(fig, title="Per-class agreement (no classes rated)")
    main = "specific_agreement" if result.is_classification else "f1"
    df = df.sort_values(main, na_position="first")
    fig.add_bar(y=df["name"], x=df[main], orientation="h", name=main.replace("_", " "))
    if not result.is_classification:
        fig.add_bar(y=df["name"], x=df["mean_iou"], orientation="h", name="mean IoU")
    fig.add_bar(y=df["name"], x=df["kappa"], orientation="h", name="kappa (Fleiss)")
    fig.update_layout(barmode="group", xaxis={"range": [min(0, float(np.nanmin(
        df[["kappa"]].to_numpy(dtype=float), initial=0))), 1]})
    return style(fig, title="Agreement per class (lowest first)", height=160 + 45 * len(df))


def iou_histogram(result: AgreementResult, *, bins: int = 40) -> go.Figure:
    """Histogram of the IoU of matched box pairs with the guideline (0.75) and target (0.85)
    lines (mask target 0.80 when ``iou_type="segm"``)."""
    fig = go.Figure()
    ious = result.matched_ious
    edges = np.linspace(0.0, 1.0001, bins + 1)
    for (a, b), g in ious.groupby(["annotator_a", "annotator_b"], observed=True):
        # binned here: a million matched pairs sent raw made every rerun of the page slow
        counts, _ = np.histogram(g["iou"].to_numpy(dtype=float), bins=edges)
        fig.add_bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges),
                    name=f"{a} vs {b}", opacity=0.6,
                    hovertemplate="IoU %{x:.3f}: %{y} pairs<extra></extra>")
    target = MASK_IOU_TARGET if result.iou_type == "segm" else IOU_TARGET
    fig.add_vline(x=IOU_GUIDELINES_MIN, line_dash="dash", line_color="#D55E00",
                  annotation_text=f"{IOU_GUIDELINES_MIN}: guidelines need work",
                  annotation_position="top left")
    fig.add_vline(x=target, line_dash="dash", line_color="#009E73",
                  annotation_text=f"target {target}", annotation_position="top right")
    fig.update_layout(barmode="overlay", xaxis_title="IoU of matched pairs", yaxis_title="pairs")
    return style(fig, title="Matched-box IoU", height=360)


def confusion_heatmap(confusion: pd.DataFrame) -> go.Figure:
    """Heatmap of :meth:`AgreementResult.confusion` (rows: first annotator)."""
    z = confusion.to_numpy()
    fig = go.Figure(go.Heatmap(z=z, x=[str(c) for c in confusion.columns],
                               y=[str(i) for i in confusion.index], text=z,
                               texttemplate="%{text}", colorscale="Blues",
                               hovertemplate="%{y} / %{x}: %{z}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title=confusion.index.name)
    fig.update_xaxes(title=confusion.columns.name)
    return style(fig, title=f"{confusion.index.name} (rows) vs {confusion.columns.name} (columns)",
                 height=160 + 40 * len(confusion))


def _band(v, good, bad, higher_is_better=True) -> str:
    if v is None or pd.isna(v):
        return ""
    if not higher_is_better:
        v, good, bad = -v, -good, -bad
    colour = GOOD if v >= good else WARN if v >= bad else BAD
    return f"background-color: {colour}"


# column -> (target, minimum, higher is better)
SCORECARD_THRESHOLDS = {
    "mean_iou": (IOU_TARGET, IOU_GUIDELINES_MIN, True),
    "recall": (RECALL_TARGET, RECALL_MIN, True),
    "precision": (RECALL_TARGET, RECALL_MIN, True),
    "agreement_with_others": (RECALL_TARGET, RECALL_MIN, True),
    "label_mismatch_rate": (LABEL_MISMATCH_TARGET, LABEL_MISMATCH_MAX, False),
    "label_error_rate": (LABEL_MISMATCH_TARGET, LABEL_MISMATCH_MAX, False),
    "mean_kappa": (KAPPA_TARGET, KAPPA_MIN, True),
}


def scorecard_colours(scorecard: pd.DataFrame, *, iou_target: float = IOU_TARGET) -> pd.DataFrame:
    """CSS per cell of the scorecard: green at target, orange between, red below the minimum
    (mean IoU: 0.85 / 0.75; recall 0.95 / 0.85; label mismatch 2 % / 5 %; kappa 0.8 / 0.6)."""
    css = pd.DataFrame("", index=scorecard.index, columns=scorecard.columns)
    for col, (good, bad, up) in SCORECARD_THRESHOLDS.items():
        if col in scorecard:
            if col == "mean_iou":
                good = iou_target
            css[col] = [_band(v, good, bad, up) for v in scorecard[col]]
    return css


# scorecard columns a person reads first (the rest follow in their own order)
SCORECARD_FIRST = ["annotator", "mean_iou", "recall", "precision", "top_confusions",
                   "label_error_rate", "box_noise_px", "box_bias", "consensus_weight"]
PERCENT_COLUMNS = ("box_noise", "box_bias", "consensus_weight", "label_error_rate",
                   "label_mismatch_rate")


def style_scorecard(scorecard: pd.DataFrame, *, iou_target: float = IOU_TARGET,
                    colour: bool = True):
    """A pandas Styler of the scorecard, the columns a person reads first in front, coloured
    by :func:`scorecard_colours`; ``colour=False`` (two annotators: nobody can tell who is
    right) leaves every cell uncoloured."""
    cols = [c for c in SCORECARD_FIRST if c in scorecard] + [
        c for c in scorecard.columns if c not in SCORECARD_FIRST]
    sc = scorecard[cols]
    fmt = {c: "{:.3f}" for c in sc.columns if sc[c].dtype.kind == "f"}
    fmt.update({c: "{:.1%}" for c in PERCENT_COLUMNS if c in sc})
    if "box_noise_px" in sc:
        fmt["box_noise_px"] = "{:.2f} px"
    styler = sc.style.format(fmt, na_rep="—")
    if colour:
        styler = styler.apply(lambda _: scorecard_colours(sc, iou_target=iou_target), axis=None)
    return styler


def scorecard_caption(result: AgreementResult, *, iou_target: float = IOU_TARGET) -> str:
    """One line saying what the scorecard compares against and what its colours mean."""
    if not result.consensus_defined:
        return ("Each annotator against the other: the same pairwise figures for both, "
                "uncoloured (nobody can tell which of two is right).")
    if result.is_classification:
        return ("Each annotator against the majority label of the others; label habits from "
                "their Dawid-Skene confusion matrix.")
    return (f"Each annotator against the reliability-weighted consensus of the others. Mean IoU "
            f"is the estimated IoU with the true box. Green: on target (IoU ≥ {iou_target}); "
            f"red: guidelines need work (IoU < {IOU_GUIDELINES_MIN}).")


def noise_bars(result: AgreementResult) -> go.Figure:
    """Each annotator's estimated box-side error (sd, as a share of the median object) and
    outward bias, from the reliability-weighted consensus; empty with fewer than 3
    annotators (undefined). Longer bars are worse."""
    sc = result.scorecard
    fig = go.Figure()
    if not result.consensus_defined or "box_noise" not in sc or sc["box_noise"].isna().all():
        return style(fig, title="Box noise: not estimated (fewer than three annotators, or "
                     "too few shared objects)", height=120)
    colours = annotator_colors(result.annotators)
    names = sc["annotator"].astype(str).tolist()
    fig.add_bar(y=names, x=sc["box_noise"], orientation="h", name="side error (sd)",
                marker_color=[colours[n] for n in names],
                text=[f"{v:.1%} ({p:.1f} px)" for v, p in zip(sc["box_noise"],
                                                               sc["box_noise_px"])],
                hovertemplate="%{y}: side error %{x:.1%} of the box<extra></extra>")
    fig.add_bar(y=names, x=sc["box_bias"], orientation="h", name="outward bias",
                marker_color="#999999", text=[f"{v:+.1%}" for v in sc["box_bias"]],
                hovertemplate="%{y}: sides %{x:+.1%} of the box outward<extra></extra>")
    fig.update_layout(barmode="group", xaxis={"title": "share of the box size",
                                                  "tickformat": ".0%"})
    fig.update_yaxes(autorange="reversed")
    return style(fig, title="Box noise per annotator (at the median object size)",
                 height=140 + 60 * len(names))


def annotator_confusion_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Heatmap of :meth:`AgreementResult.annotator_confusion` (true class rows, the class the
    annotator gave in columns, shares); off-diagonal cells are confusions."""
    fig = go.Figure()
    if matrix.empty:
        return style(fig, title="No Dawid-Skene confusion matrix (fewer than 3 annotators)",
                     height=120)
    z = matrix.to_numpy(dtype=float)
    fig.add_trace(go.Heatmap(z=z, x=[str(c) for c in matrix.columns],
                             y=[str(i) for i in matrix.index], zmin=0, zmax=1,
                             text=[[f"{v:.0%}" if np.isfinite(v) else "" for v in row]
                                   for row in z], texttemplate="%{text}", colorscale="Blues",
                             hovertemplate="true %{y}, given %{x}: %{z:.1%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title=matrix.index.name)
    fig.update_xaxes(title=matrix.columns.name)
    return style(fig, title=f"True class (rows) vs what {matrix.columns.name.removesuffix(' gave')}"
                 " gave (Dawid-Skene estimate, among the boxes drawn)",
                 height=160 + 40 * len(matrix))
