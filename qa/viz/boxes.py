"""Box overlays: draw each annotator's boxes (and a model's predictions) on an image.

Returns PIL images; files are read through :mod:`qa.images` (``load_image``), so drawing
functions can be tested on arrays.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from qa.dataset import ANN_ID, ANNOTATOR, CATEGORY_ID, FILE_NAME, IMAGE_ID, SCORE, H, W, X, Y
from qa.viz.common import PREDICTION_COLOR, annotator_colors, class_colors

# Gallery thumbnails: long side in pixels. Big enough to read a label, small enough that a
# page of 24 stays light over the websocket.
THUMB_SIDE = 480
PLACEHOLDER_COLOR = (60, 60, 60)
# Label text on a THUMB_SIDE thumbnail: readable when the gallery shows it ~300 px wide.
LABEL_FONT_PX = 16


@functools.lru_cache(maxsize=8)
def _font(size: int):
    """The label font at ``size`` px, loaded once (FreeType: a few ms per load, per
    thumbnail)."""
    return ImageFont.load_default(size=size)


def load_image(root: Path | str | None, file_name: str, *, max_side: int = THUMB_SIDE
               ) -> tuple[Image.Image, float, str | None]:
    """(RGB image scaled to ``max_side``, scale factor, error), read through the one image
    reader (:func:`qa.images.read_image`, confined to ``root``). A grey placeholder with the
    reason when the file is missing, outside the root or unreadable. Never raises."""
    from qa.images import read_image

    res = read_image(root, file_name, max_side=max_side)
    if res.ok:
        img = res.image
        full_w = res.size[0]
        # every thumbnail gets the same long side, so boxes and labels are drawn at one size;
        # small images are enlarged with visible pixels (NEAREST) rather than blurred
        scale = max_side / max(img.size) if max(img.size) else 1.0
        if scale != 1.0:
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR)
        return img, img.width / full_w if full_w else scale, None
    err = res.error
    img = Image.new("RGB", (max_side, int(max_side * 0.75)), PLACEHOLDER_COLOR)
    d = ImageDraw.Draw(img)
    d.text((20, 20), "image unavailable", fill=(230, 230, 230),
           font=_font(LABEL_FONT_PX * 2))
    d.text((20, 70), err, fill=(200, 200, 200), font=_font(LABEL_FONT_PX))
    return img, 1.0, err


def draw_boxes(
    image: Image.Image,
    annotations: pd.DataFrame,
    *,
    scale: float = 1.0,
    category_names: dict[int, str] | None = None,
    colors: dict[str, str] | None = None,
    predictions: pd.DataFrame | None = None,
    highlight_ann_ids=None,
    show_labels: bool = True,
    color_by: str = "annotator",
) -> Image.Image:
    """A copy of ``image`` with boxes drawn: one colour per annotator (``color_by="class"``:
    per class, with ``colors`` keyed by class name), predictions dashed in magenta with their
    score, highlighted annotations thicker. ``scale`` maps the dataset's pixel coordinates to
    ``image``'s."""
    if color_by not in ("annotator", "class"):
        raise ValueError(f"color_by must be 'annotator' or 'class', got {color_by!r}")
    img = image.copy()
    d = ImageDraw.Draw(img)
    font = _font(LABEL_FONT_PX)
    names = category_names or {}
    if color_by == "class":
        colors = colors or class_colors(sorted({str(v) for v in names.values()}))
    colors = colors or annotator_colors(sorted(annotations[ANNOTATOR].astype(str).unique())
                                        if len(annotations) else [])

    def color_of(rd):
        key = (names.get(rd[CATEGORY_ID], rd[CATEGORY_ID]) if color_by == "class"
               else rd[ANNOTATOR])
        return colors.get(str(key), "#00FF00")

    hl = set(int(i) for i in highlight_ann_ids) if highlight_ann_ids is not None else set()
    boxes = annotations[annotations[W].notna()] if len(annotations) else annotations
    labels = annotations[annotations[W].isna()] if len(annotations) else annotations
    # image-level labels (classification): one chip per annotator label, stacked top-left
    y = 2
    for rd in _records(labels, (ANNOTATOR, CATEGORY_ID)):
        col = color_of(rd)
        text = f"{rd[ANNOTATOR]}: {names.get(rd[CATEGORY_ID], rd[CATEGORY_ID])}"
        y = _label(d, font, 2, y, text, col, below=True) + 2
    for rd in _records(boxes, (X, Y, W, H, ANN_ID, CATEGORY_ID, ANNOTATOR)):
        x0, y0 = rd[X] * scale, rd[Y] * scale
        x1, y1 = (rd[X] + rd[W]) * scale, (rd[Y] + rd[H]) * scale
        col = color_of(rd)
        width = 4 if int(rd[ANN_ID]) in hl else 2
        d.rectangle([x0, y0, x1, y1], outline=col, width=width)
        if show_labels:
            _label(d, font, x0, y0, str(names.get(rd[CATEGORY_ID], rd[CATEGORY_ID])), col)
    if predictions is not None and len(predictions):
        for rd in _records(predictions, (X, Y, W, H, CATEGORY_ID, SCORE)):
            x0, y0 = rd[X] * scale, rd[Y] * scale
            x1, y1 = (rd[X] + rd[W]) * scale, (rd[Y] + rd[H]) * scale
            _dashed_rect(d, x0, y0, x1, y1, PREDICTION_COLOR)
            if show_labels:
                txt = f"{names.get(rd[CATEGORY_ID], rd[CATEGORY_ID])} {rd[SCORE]:.2f}"
                _label(d, font, x0, y1, txt, PREDICTION_COLOR, below=True)
    return img


def _records(df: pd.DataFrame, cols: tuple[str, ...]):
    """Rows of ``df`` as dicts of ``cols`` (those present; others None), from plain lists:
    ``itertuples`` on Arrow-backed columns cost ~6 ms per thumbnail, a third of a gallery."""
    if not len(df):
        return
    values = [df[c].tolist() if c in df.columns else [None] * len(df) for c in cols]
    for row in zip(*values):
        yield dict(zip(cols, row))


def _label(d: ImageDraw.ImageDraw, font, x, y, text, color, *, below=False):
    l, t, r, b = d.textbbox((0, 0), text, font=font)
    tw, th = r - l + 4, b - t + 2
    y0 = y if below else max(0, y - th)
    d.rectangle([x, y0, x + tw, y0 + th], fill=color)
    d.text((x + 2, y0), text, fill="white", font=font)
    return y0 + th


def _dashed_rect(d, x0, y0, x1, y1, color, dash=6):
    for (a, b) in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)),
                   ((x0, y1), (x0, y0))):
        length = float(np.hypot(b[0] - a[0], b[1] - a[1]))
        n = max(1, int(length // dash))
        for i in range(0, n, 2):
            s, e = i / n, min(1.0, (i + 1) / n)
            d.line([(a[0] + (b[0] - a[0]) * s, a[1] + (b[1] - a[1]) * s),
                    (a[0] + (b[0] - a[0]) * e, a[1] + (b[1] - a[1]) * e)], fill=color, width=2)


def render_image(ds, image_id: int, *, annotators=None, show_predictions: bool = False,
                 highlight_ann_ids=None, max_side: int = THUMB_SIDE, show_boxes: bool = True,
                 color_by: str = "annotator") -> tuple[Image.Image, str | None]:
    """Thumbnail of one dataset image with the chosen annotators' boxes (coloured per
    annotator or per class; none with ``show_boxes=False``); (image, error)."""
    row = ds.images.loc[ds.images[IMAGE_ID] == image_id, FILE_NAME]
    img, scale, err = load_image(ds.root, str(row.iloc[0]) if len(row) else "", max_side=max_side)
    anns = ds.annotations[ds.annotations[IMAGE_ID] == image_id]
    if annotators is not None:
        anns = anns[anns[ANNOTATOR].astype(str).isin([str(a) for a in annotators])]
    preds = None
    if show_predictions:
        preds = ds.predictions[ds.predictions[IMAGE_ID] == image_id]
    if err is None and show_boxes:
        colors = (class_colors(sorted({str(v) for v in ds.category_names.values()}))
                  if color_by == "class" else annotator_colors(ds.annotators))
        img = draw_boxes(img, anns, scale=scale, category_names=ds.category_names,
                         colors=colors, predictions=preds,
                         highlight_ann_ids=highlight_ann_ids, color_by=color_by)
    return img, err


# Context kept around an object's crop, as a share of the box on each side, and the crop's
# shortest side on screen (a small box is enlarged to be seen).
CROP_CONTEXT = 0.75
CROP_MIN_SIDE = 160
HIGHLIGHT_COLOR = "#FFD400"


def render_object(ds, ann_id: int, *, context: float = CROP_CONTEXT,
                  min_side: int = CROP_MIN_SIDE) -> tuple[Image.Image | None, str | None]:
    """One labelled box shown on its own: the image cropped to the box plus ``context`` of
    its size on each side, the box outlined thick in :data:`HIGHLIGHT_COLOR` (the other
    boxes of its annotator thin), enlarged so its shorter side is at least ``min_side`` px.
    (image, error); image None when the annotation or its file is unusable."""
    a = ds.annotations[ds.annotations[ANN_ID] == int(ann_id)]
    if a.empty or pd.isna(a[W].iloc[0]):
        return None, f"annotation {ann_id} has no box"
    r = a.iloc[0]
    row = ds.images.loc[ds.images[IMAGE_ID] == r[IMAGE_ID], FILE_NAME]
    from qa.images import read_image

    res = read_image(ds.root, str(row.iloc[0]) if len(row) else "")
    if not res.ok:
        return None, res.error
    img, scale = res.image.convert("RGB"), res.image.width / res.size[0] if res.size[0] else 1.0
    others = ds.annotations[(ds.annotations[IMAGE_ID] == r[IMAGE_ID])
                            & (ds.annotations[ANNOTATOR] == r[ANNOTATOR])]
    img = draw_boxes(img, others[others[ANN_ID] != int(ann_id)], scale=scale,
                     category_names=ds.category_names, show_labels=False,
                     colors=annotator_colors(ds.annotators))
    x0, y0, w, h = (float(r[c]) * scale for c in (X, Y, W, H))
    ImageDraw.Draw(img).rectangle([x0 - 2, y0 - 2, x0 + w + 2, y0 + h + 2],
                                  outline=HIGHLIGHT_COLOR, width=4)
    cx0, cy0 = max(0, int(x0 - context * w) - 4), max(0, int(y0 - context * h) - 4)
    cx1 = min(img.width, int(x0 + w + context * w) + 4)
    cy1 = min(img.height, int(y0 + h + context * h) + 4)
    crop = img.crop((cx0, cy0, max(cx1, cx0 + 1), max(cy1, cy0 + 1)))
    k = max(1.0, min_side / max(1, min(crop.size)))
    if k > 1:
        crop = crop.resize((round(crop.width * k), round(crop.height * k)), Image.NEAREST)
    return crop, None


__all__ = ["draw_boxes", "load_image", "render_image", "render_object"]
