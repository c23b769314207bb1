"""Plotly figures and box overlays. Functions return figures or PIL images; they never draw on
a page. One module per analysis (balance, agreement, ...) plus ``boxes`` for overlays and
``common`` for the palette, so analyses can grow their figures side by side."""

from qa.viz.common import annotator_colors, class_colors

__all__ = ["annotator_colors", "class_colors"]
