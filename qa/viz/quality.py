"""Figures of the Image quality page."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from qa.quality import CHECKS, METRIC_OF
from qa.viz.common import PALETTE, style

LABELS = {"dark": "Dark", "overexposed": "Overexposed", "blurry": "Blurry",
          "low_information": "Low information", "grayscale": "Grey in a colour set",
          "odd_aspect": "Odd aspect ratio", "tiny": "Tiny"}
AXIS = {"brightness": "mean brightness (luma, 0-255)",
        "exposure_dark": "exposure: the brightest 2 % (0-255)",
        "exposure_bright": "exposure: the darkest 2 % (0-255)",
        "sharp_objects": "sharpness: Laplacian variance on the objects or sharpest part "
                         "(log scale; low = blurred)",
        "blur": "blur: variance of the Laplacian (log scale; low = blurred)",
        "entropy": "entropy of the luma histogram (bits; low = near-blank)",
        "colorfulness": "colourfulness: mean |R-G| + |G-B| (0 = grey)",
        "aspect": "aspect ratio width / height (log scale)",
        "min_side": "short side (px, log scale)"}
LOG_AXIS = {"blur", "sharp_objects", "aspect", "min_side"}


def counts_bar(result) -> go.Figure:
    """Flagged images per check."""
    c = result.counts
    fig = go.Figure(go.Bar(x=[LABELS[k] for k in c["check"]], y=c["flagged"],
                           text=[f"{n} ({s:.1%})" for n, s in zip(c["flagged"], c["share"])],
                           textposition="outside", marker_color=PALETTE[5]))
    fig.update_layout(yaxis_title="images flagged", xaxis_title=None)
    return style(fig, title="Images flagged per check", height=320)


def check_hist(result, check: str) -> go.Figure:
    """Histogram of the statistic behind ``check``, flagged images in orange, with the
    cut(s) the rule used drawn as dashed lines."""
    if check not in CHECKS:
        raise ValueError(f"unknown check {check!r}; checks: {CHECKS}")
    metric = METRIC_OF[check]
    df = result.per_image
    x = df[metric].astype(float).to_numpy()
    flagged = df[f"is_{check}"].to_numpy(bool)
    log = metric in LOG_AXIS
    plot_x = np.log10(np.maximum(x, 1e-3) + (1 if metric in ("blur", "sharp_objects") else 0)) if log else x
    fig = go.Figure()
    for mask, name, color in ((~flagged, "not flagged", PALETTE[0]),
                              (flagged, "flagged", "#D55E00")):
        fig.add_trace(go.Histogram(x=plot_x[mask], name=f"{name} ({int(mask.sum())})",
                                   marker_color=color, nbinsx=50, opacity=0.85))
    th = result.thresholds.get(check, {})
    for side in ("low", "high"):
        v = th.get(side)
        if v is None:
            continue
        pos = np.log10(max(v, 1e-3) + (1 if metric in ("blur", "sharp_objects") else 0)) if log else v
        fig.add_vline(x=pos, line_dash="dash", line_color="#D55E00",
                      annotation_text=f"{side} cut {v:.3g}", annotation_position="top")
    title = f"{LABELS[check]}: {AXIS[metric].split(':')[0].split(' (')[0]}"
    fig.update_layout(barmode="stack", xaxis_title=("log10 " if log else "") + AXIS[metric],
                      yaxis_title="images")
    return style(fig, title=title, height=320)
