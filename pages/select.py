"""Select & split: the images to label next, with their reasons, and a proposed split with
no leakage and the class mix of the whole in every split."""

import streamlit as st

from qa.app import cached
from qa.app import cached_selection as cs
from qa.app.state import dataset_key, require_dataset
from qa.app.widgets import embed_button, image_gallery
from qa.embeddings import embed_images
from qa.partition import DEFAULT_FRACTIONS, SHARE_TOLERANCE
from qa.selection import AGGREGATES, DEFAULT_RARE_WEIGHT, MEASURES, STRATEGIES, STRATEGY_TITLES
from qa.selection import pool_presets, pool_title
from qa.viz import selection as vs

ds = require_dataset()
st.title("Select & split")
key = dataset_key()
section = st.radio("Section", ["What to label next", "Propose a split"], horizontal=True,
                   key="sel_section")

if section == "What to label next":
    presets = pool_presets(ds)
    c1, c2, c3 = st.columns([2, 2, 1])
    names = list(presets)
    pool = c1.selectbox("Pool to choose from", names, key="sel_pool", index=next(
        (k for k, p in enumerate(names) if presets[p][0]), 0), format_func=lambda p:
        f"{pool_title(p)} ({len(presets[p][0]):,})")
    strategy = c2.selectbox("Strategy", STRATEGIES, format_func=STRATEGY_TITLES.get,
                            key="sel_strategy")
    budget = c3.number_input("Budget", 1, 100_000, 10, key="sel_budget")
    with st.expander("Uncertainty and rare classes"):
        o1, o2, o3 = st.columns(3)
        measure = o1.selectbox("Measure", MEASURES, key="sel_measure")
        aggregate = o2.selectbox("Boxes per image", AGGREGATES, key="sel_aggregate",
                                 help="detections: pool each box's uncertainty by max, mean, "
                                      "sum, or count the boxes near the 0.5 threshold")
        rare_weight = o3.slider("Rare-class weight", 0.0, 5.0, DEFAULT_RARE_WEIGHT, 0.5,
                                key="sel_rare_weight", help="0 turns targeting off")
    emb, missing, why = cs.stored_image_embeddings(key, ds)
    if why:
        st.caption(why)
    if missing:
        embed_button(f"Embed {missing:,} images", key="sel_embed",
                     run=lambda p: embed_images(ds, progress=p))
    n_vec = len(emb) if emb is not None else 0
    try:
        res = cs.selection(key, ds, pool, strategy, int(budget), measure, aggregate,
                           float(rare_weight), emb.model_id if n_vec else "", n_vec, emb)
    except ValueError as e:
        st.warning(str(e))
        st.stop()
    m = res.metrics()
    k = st.columns(5)
    k[0].metric("Pool", f"{res.n_pool:,}")
    k[1].metric("Labelled", f"{res.n_labelled:,}")
    k[2].metric("Picked", m["n_picked"])
    k[3].metric("Skipped copies", m["n_skipped"], help="near-duplicates of a labelled image "
                                                      "or of an earlier pick")
    cov = m["coverage_before"], m["coverage_after"]
    k[4].metric("Coverage (mean distance)", "—" if cov[1] is None else f"{cov[1]:.3f}",
                None if cov[0] is None else f"{cov[1] - cov[0]:+.3f}", delta_color="inverse",
                help="mean distance from a pool image to the nearest labelled one: after "
                     "labelling the picks (the change from now)")
    for note in res.notes:
        st.caption(note)
    if res.rare_classes:
        st.caption(f"Rare classes targeted: {', '.join(res.rare_classes)}.")
    st.subheader("Picked, in order")
    image_gallery(ds, res.picks["image_id"], key="sel_gallery", show_predictions=True,
                  captions={r.image_id: f"{r.rank}. {r.reasons}" for r in res.picks.itertuples()})
    st.dataframe(res.picks, hide_index=True, key="sel_picks")
    if n_vec:
        mp, note = cached.embedding_map(key, emb.model_id, n_vec, "pca", emb.vectors)
        status = res.status_of(emb.image_ids, set(presets[pool][1]))
        st.plotly_chart(vs.selection_map(mp, emb.image_ids, status, note=note, ranks=zip(
            res.picks["image_id"], res.picks["rank"])), key="sel_map")
        st.plotly_chart(vs.coverage_hist(res.pool), key="sel_coverage")
    if res.pool["uncertainty"].notna().any():
        st.plotly_chart(vs.uncertainty_hist(res.pool), key="sel_uncertainty")
    if len(res.skipped):
        st.subheader("Skipped near-duplicates")
        st.dataframe(res.skipped, hide_index=True, key="sel_skipped")
    files = cs.selection_files(key, ds, res, (pool, strategy, int(budget), measure, aggregate,
                                              float(rare_weight), n_vec))
    d = st.columns(len(files))
    for col, (kind, (name, data)) in zip(d, files.items()):
        col.download_button(name, data, name, key=f"sel_dl_{kind}")
else:
    complete = bool(len(ds.images)) and ds.images["split"].notna().all()
    keep = st.checkbox("Keep the existing split", value=bool(ds.splits), key="split_keep",
                       help="move only leaking copies and what the class mix needs")
    fr = {}
    if keep and complete:  # its own shares are the fractions
        st.caption("Keeping the current split: " + ", ".join(
            f"{s} {n:,}" for s, n in ds.summary()["splits"].items()) + " images.")
    else:
        f = st.columns(3)
        fr = {s: f[i].number_input(f"{s} share", 0.0, 1.0, v, 0.05, key=f"split_fr_{s}")
              for i, (s, v) in enumerate(DEFAULT_FRACTIONS.items())}
    tol = st.slider("Class-share tolerance (points)", 0.5, 10.0, 100 * SHARE_TOLERANCE, 0.5,
                    key="split_tol") / 100
    try:
        prop = cs.split_proposal(key, ds, tuple((s, v) for s, v in fr.items() if v > 0),
                                 keep, tol)
    except ValueError as e:
        st.warning(str(e))
        st.stop()
    st.caption(f"{prop.n_moved} image(s) change split; near-duplicates stay together "
               f"({prop.n_groups:,} groups); class mix of {prop.annotator or 'nobody'}'s labels. "
               "A proposal: nothing is moved.")
    for note in prop.notes:
        st.caption(note)
    c1, c2 = st.columns([3, 2])
    c1.dataframe(prop.checks(), hide_index=True, key="split_checks")
    c2.dataframe(prop.sizes, hide_index=True, key="split_sizes")
    st.plotly_chart(vs.share_chart(prop.shares), key="split_shares")
    st.subheader("Images that change split")
    st.dataframe(prop.moved, hide_index=True, key="split_moved")
    st.download_button("Download the proposal (CSV)", prop.split_csv(), "split.csv", "text/csv",
                       key="split_dl")
