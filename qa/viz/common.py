"""Shared look: colours per annotator/class, and the defaults every figure uses."""

from __future__ import annotations

import plotly.graph_objects as go

# Colour-blind-safe qualitative palette (Okabe-Ito), then Plotly's D3 for more series.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
PREDICTION_COLOR = "#FF00FF"  # predictions are drawn dashed in magenta, apart from annotators
TEMPLATE = "plotly_white"


def _colors(names) -> dict[str, str]:
    return {str(n): PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def annotator_colors(annotators) -> dict[str, str]:
    """A stable colour per annotator (order of ``Dataset.annotators``)."""
    return _colors(annotators)


# Classes often number more than eight: after Okabe-Ito, hues unlike those eight (PALETTE's
# D3 part repeats its blue and orange, so two classes looked the same on a chess set)
CLASS_PALETTE = PALETTE[:8] + ["#d62728", "#9467bd", "#8c564b", "#bcbd22", "#7f7f7f",
                               "#17becf", "#ff9896", "#393b79", "#98df8a", "#843c39",
                               "#c5b0d5", "#637939"]


def class_colors(names) -> dict[str, str]:
    return {str(n): CLASS_PALETTE[i % len(CLASS_PALETTE)] for i, n in enumerate(names)}


# Plotly's toolbar (the modebar) floats over the top right of a chart, about this high: the
# title is drawn below it, left-aligned just above the plot, so the icons never cover it.
MODEBAR_PX = 32
TITLE_PX = 16


def style(fig: go.Figure, *, title: str | None = None, height: int | None = None) -> go.Figure:
    """Apply the house template; returns the same figure. A title sits in a top margin
    below the toolbar's strip (:data:`MODEBAR_PX`), left-aligned above the plot."""
    top = MODEBAR_PX + TITLE_PX + 16 if title else MODEBAR_PX
    fig.update_layout(template=TEMPLATE, margin=dict(l=10, r=10, t=top, b=10),
                      title=None if title is None else dict(
                          text=title, x=0, xref="paper", xanchor="left", y=1, yref="paper",
                          yanchor="bottom", pad=dict(b=10), font=dict(size=TITLE_PX)))
    if height:
        fig.update_layout(height=height)
    return fig
