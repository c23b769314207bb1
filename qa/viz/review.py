"""Figures of the review queue: the item's image with its evidence drawn, and the progress
of the review by kind and status. Functions return PIL images / ``go.Figure`` (never draw)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from PIL import Image

from qa.dataset import IMAGE_ID, PRED_ID, Dataset
from qa.review.store import STATUSES
from qa.viz.boxes import THUMB_SIDE, draw_boxes, load_image
from qa.viz.common import MODEBAR_PX, PALETTE, annotator_colors, style

# Status colours: open grey (to do), confirmed vermillion (a real issue), not an issue green,
# fixed blue (Okabe-Ito, colour-blind safe).
STATUS_COLORS = {"open": "#999999", "confirmed": PALETTE[5], "not_an_issue": PALETTE[2],
                 "fixed": PALETTE[0]}
# The review image is larger than a gallery thumbnail: one item is looked at closely.
REVIEW_SIDE = 720
RELATED_SIDE = THUMB_SIDE // 2


def item_image(ds: Dataset, item: pd.Series | dict, *, max_side: int = REVIEW_SIDE
               ) -> tuple[Image.Image | None, str | None]:
    """(image, error) of a queue row's image: every annotation drawn, the ones the finding
    concerns thicker, and the predictions it concerns dashed. (None, None) for an item with
    no image (a dataset-level finding)."""
    iid = item.get("image_id")
    if iid is None or pd.isna(iid):
        return None, None
    iid = int(iid)
    row = ds.images.loc[ds.images[IMAGE_ID] == iid, "file_name"]
    img, scale, err = load_image(ds.root, str(row.iloc[0]) if len(row) else "",
                                 max_side=max_side)
    if err is not None:
        return img, err
    anns = ds.annotations[ds.annotations[IMAGE_ID] == iid]
    pred_ids = [int(p) for p in (item.get("pred_ids") or ())]
    preds = ds.predictions[ds.predictions[PRED_ID].isin(pred_ids)] if pred_ids else None
    hl = [int(a) for a in (item.get("ann_ids") or ())]
    img = draw_boxes(img, anns, scale=scale, category_names=ds.category_names,
                     colors=annotator_colors(ds.annotators), predictions=preds,
                     highlight_ann_ids=hl or None)
    return img, None


def related_images(ds: Dataset, item: pd.Series | dict, *, limit: int = 4
                   ) -> list[tuple[int, Image.Image, str | None]]:
    """(image_id, thumbnail, error) of the other images of a pair or cluster (at most
    ``limit``), with their boxes."""
    from qa.viz.boxes import render_image

    out = []
    for j in list(item.get("related_image_ids") or ())[:limit]:
        img, err = render_image(ds, int(j), max_side=RELATED_SIDE)
        out.append((int(j), img, err))
    return out


def progress_by_kind(queue: pd.DataFrame) -> go.Figure:
    """Horizontal stacked bars: items per kind, split by status (open, confirmed, not an
    issue, fixed)."""
    fig = go.Figure()
    if not len(queue):
        fig.add_annotation(text="No items to review", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return style(fig, height=200)
    items = queue.drop_duplicates("item_key")
    t = pd.crosstab(items["kind"], items["status"]).reindex(columns=list(STATUSES), fill_value=0)
    t = t.loc[t.sum(axis=1).sort_values().index]
    for status in STATUSES:
        fig.add_bar(y=t.index.tolist(), x=t[status].tolist(), name=status.replace("_", " "),
                    orientation="h", marker_color=STATUS_COLORS[status],
                    hovertemplate="%{y}: %{x} " + status.replace("_", " ") + "<extra></extra>")
    # the legend right above the bars (below them it drifted far off on a tall chart), left
    # of the toolbar
    fig = style(fig, height=max(240, 90 + 28 * len(t)))
    fig.update_layout(barmode="stack", xaxis_title="items", legend=dict(
        orientation="h", x=0, xanchor="left", y=1, yanchor="bottom"),
        margin=dict(t=MODEBAR_PX + 28))
    return fig


__all__ = ["item_image", "progress_by_kind", "related_images"]
