"""Issue 21, look: Plotly's toolbar floats over a chart's top right corner and covered the
titles of several charts; a title now sits in a top margin below the toolbar's strip,
left-aligned above the plot. The Review chart's legend sits right above its bars (it was
placed far below a tall chart)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from qa.viz.common import MODEBAR_PX, style


def _title_clear_of_toolbar(fig: go.Figure) -> None:
    lay = fig.layout
    assert lay.title.text
    assert lay.title.yref == "paper" and lay.title.yanchor == "bottom" and lay.title.y == 1
    assert lay.title.x == 0 and lay.title.xanchor == "left"
    # the title's line fits between the toolbar's strip and the plot
    assert lay.margin.t >= MODEBAR_PX + lay.title.font.size + lay.title.pad.b


def test_style_puts_a_title_below_the_toolbar():
    _title_clear_of_toolbar(style(go.Figure(), title="COCO size buckets per class"))
    assert style(go.Figure()).layout.margin.t >= MODEBAR_PX  # no title: still room for it


@pytest.mark.parametrize("metric", ["f1", "mean_iou"])
def test_agreement_pair_heatmaps_titles_clear_of_toolbar(metric):
    from qa.agreement import compute_agreement
    from qa.viz.agreement import pair_heatmap
    from tests.test_agreement import _three_annotators

    _title_clear_of_toolbar(pair_heatmap(compute_agreement(_three_annotators()), metric))


def test_review_legend_sits_above_the_bars():
    from qa.viz.review import progress_by_kind

    q = pd.DataFrame({"item_key": [f"k{i}" for i in range(30)],
                      "kind": [f"kind{i % 15}" for i in range(30)],
                      "status": ["open", "confirmed", "fixed"] * 10})
    fig = progress_by_kind(q)
    leg = fig.layout.legend
    assert leg.orientation == "h" and leg.y == 1 and leg.yanchor == "bottom"
    assert fig.layout.margin.t >= MODEBAR_PX + 20
