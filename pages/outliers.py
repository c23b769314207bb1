"""Outliers: images unlike the rest of the dataset, and labels far from their own class."""

import streamlit as st

from qa.app import cached
from qa.app.state import clear_focus, dataset_key, focus, require_dataset
from qa.app.widgets import (embed_button, embed_images_control, embed_summary, image_gallery,
                            object_gallery)
from qa.embeddings import (FALLBACK, ModelError, embed_images, embed_objects,
                           unreadable_sentence)
from qa.outliers import DEFAULT_K, MAP_METHODS, METHODS
from qa.viz import outliers as vo

ds = require_dataset()
st.title("Outliers")
key = dataset_key()

with st.expander("Model", expanded=False):
    m1, m2 = st.columns([1, 2])
    model = m1.selectbox("Embedding model", ["auto", FALLBACK], key="out_model")
    ckpt = m2.text_input("Local CLIP checkpoint (optional, for air-gapped machines)",
                         key="out_ckpt").strip() or None
try:
    spec = cached.model_spec(model, ckpt)
except ModelError as e:
    st.error(str(e))
    st.stop()
emb = cached.stored_embeddings(key, ds, spec.model_id, model, ckpt)
st.markdown(f"**Model:** `{emb.model_label}`")
st.caption(spec.reason)

embed_images_control(ds, emb, key="out_embed",
                     run=lambda p: embed_images(ds, model=model, checkpoint=ckpt, progress=p))

objects = (cached.stored_embeddings(key, ds, spec.model_id, model, ckpt, objects=True)
           if ds.has_boxes else None)
embed_summary("out_embed_objects")
if ds.has_boxes and (objects is None or len(objects) == 0):  # whatever the section shown
    embed_button("Embed the labelled boxes", key="out_embed_objects",
                 help="Per-class outliers, and each unsupported box's crop decides on Model "
                      "disagreement: label error or model miss.",
                 run=lambda p: embed_objects(ds, model=model, checkpoint=ckpt, progress=p))
c1, c2, c3, c4 = st.columns(4)
method = c1.selectbox("Method", METHODS, key="out_method")
k = c2.slider("Neighbours k", 2, 50, DEFAULT_K, key="out_k")
color_by = c3.selectbox("Colour the map by", vo.COLOR_BY, key="out_color")
map_method = c4.selectbox("Map projection", MAP_METHODS, key="out_map")
stats = cached.image_stats(key, ds) if ds.root is not None else None
res = cached.outliers(key, ds, emb, objects if objects is not None and len(objects) else None,
                      emb.model_id, len(emb), len(objects) if objects is not None else 0,
                      method, k, stats)
m = res.metrics()
cols = st.columns(5)
cols[0].metric("Embedded", f"{m['n_images_embedded']:,}")
cols[1].metric("Could not embed", m["n_failed"])
cols[2].metric("Outliers", m["n_outliers"], help="score above Tukey's fence (Q3 + 1.5 IQR) "
               "and 1.5 x the median score: nothing is flagged when nothing is unlike the rest")
cols[3].metric("Flag threshold", f"{res.fence:.3g}")
cols[4].metric("Class outliers", "—" if m["n_class_outliers"] is None else m["n_class_outliers"])
for note in res.notes[1:] + ((unreadable_sentence(emb.failed) + ".",) if len(emb.failed) else ()):
    st.caption(note)

ids, kind = focus()
SECTIONS = ["Ranked outliers", "Map", "Per-class outliers", "Text search", "Not embedded"]
section = st.radio("Section", SECTIONS, horizontal=True, key="out_section")
if section == "Ranked outliers":
    flagged = res.flagged
    if ids:
        st.info(f"Showing only the {len(ids)} images of the link.")
        st.button("Show the whole dataset", on_click=clear_focus, key="out_clear_focus")
        flagged = res.per_image[res.per_image["image_id"].isin(ids)].sort_values("rank")
    st.download_button("Download the flagged list (CSV)", res.export_frame().to_csv(index=False),
                       file_name="outliers.csv", mime="text/csv", key="out_csv")
    image_gallery(ds, flagged["image_id"], key="out_gallery", captions=vo.ranked_captions(flagged))
    if len(flagged):
        names = dict(zip(flagged["image_id"], flagged["file_name"]))
        pick = st.selectbox("Nearest ordinary images of", flagged["image_id"], key="out_pick",
                            format_func=lambda i: names[i])
        image_gallery(ds, flagged.set_index("image_id").loc[pick, "neighbors"],
                      key="out_neighbours", max_images=5, columns=5)
    st.plotly_chart(vo.score_histogram(res), key="out_hist")
elif section == "Map":
    try:
        mp, note = cached.embedding_map(key, emb.model_id, len(emb), map_method, emb.vectors)
    except ImportError as e:  # UMAP is an optional extra
        st.info(str(e))
        st.stop()
    attrs = cached.image_attributes(key, ds, tuple(res.per_image["image_id"]))
    ev = st.plotly_chart(vo.outlier_map(mp, res, attrs, color_by=color_by, note=note),
                         key="out_scatter", on_select="rerun", selection_mode="points")
    points = (ev.selection.points if ev and ev.selection else []) or []
    chosen = [int(p["customdata"][0]) for p in points if p.get("customdata")]
    st.caption("Click a point (or box-select) to see the images.")
    if chosen:
        image_gallery(ds, chosen, key="out_map_gallery", max_images=8)
elif section == "Per-class outliers":
    if ds.has_boxes and (objects is None or len(objects) == 0):
        st.info("Per-class outliers compare each box with the other boxes of its class: "
                "embed the labelled boxes with the button above.")
    fc = res.flagged_class
    if len(fc) and fc["ann_id"].notna().any():  # the odd box itself, cropped and highlighted
        st.caption("Each odd box, cropped with its surroundings and outlined in yellow.")
        object_gallery(ds, fc["ann_id"].dropna().astype(int), key="out_class_crops",
                       captions=vo.class_outlier_captions(fc))
    elif len(fc):
        image_gallery(ds, list(dict.fromkeys(fc["image_id"])), key="out_class_gallery")
    st.dataframe(fc, hide_index=True, key="out_class_table")
elif section == "Text search":
    if not emb.is_clip:
        st.info(f"Text search needs a CLIP model; these vectors come from {emb.model_label}. "
                "Put the CLIP weights in the local cache or give a checkpoint (Model, above).")
    else:
        query = st.text_input("Describe what to find", key="out_query",
                              placeholder="a blurry photo at night")
        if query.strip():
            hits = cached.text_search(key, emb.model_id, len(emb), query, ckpt, emb)
            top = hits.head(24)
            image_gallery(ds, top["image_id"], key="out_search_gallery", captions={
                r.image_id: f"similarity {r.similarity:.3f}" for r in top.itertuples()})
else:
    st.dataframe(res.failed, hide_index=True, key="out_failed")
