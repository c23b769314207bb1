"""Review: one queue over every analysis' findings; decide, with your name, and it is kept."""

import streamlit as st

from qa import review
from qa.app import cached
from qa.app.state import clear_focus, dataset_key, focus, require_dataset
from qa.review.exchange import dataset_decisions, decisions_text, relabel_text
from qa.viz import review as vr

TABLE_ROWS = 500  # rows of the table below the item: a window, not 200k rows per rerun

ds = require_dataset()
st.title("Review")
try:  # built once per dataset; a decision is applied to it, never rebuilding it
    queue = cached.review_queue(dataset_key(), ds)
except (review.ReviewDatabaseError, ValueError) as exc:
    st.error(str(exc), icon=":material/error:")
    st.stop()
queue.refresh()  # decisions made elsewhere (another process, an import); else one COUNT
store = queue.store

ids, kind = focus()
if ids:
    st.info(f"Showing the items of {len(ids)} linked image(s) only.")
    st.button("Show the whole queue", on_click=clear_focus, key="rv_clear_focus")
if "qa_reviewer" not in st.session_state:  # a reload starts a new session: the URL remembers
    st.session_state["qa_reviewer"] = st.query_params.get("reviewer", "")
reviewer = st.sidebar.text_input("Your name (recorded with each decision)", key="qa_reviewer")
if reviewer.strip() and st.query_params.get("reviewer") != reviewer.strip():
    st.query_params["reviewer"] = reviewer.strip()

f = st.columns(5)
opts = dict(queue.options)
opts["status"] = list(review.STATUSES)  # fixed: a status must stay choosable when emptied
if kind and st.session_state.get("rv_focus_kind") != kind and kind in opts["kind"]:
    st.session_state["rv_kinds"] = [kind]  # once per deep link: the reviewer may widen it
    st.session_state["rv_focus_kind"] = kind
sel = {c: f[i].multiselect(c.replace("_name", "").capitalize(), opts[c], key=f"rv_{c}s")
       for i, c in enumerate(opts)}
shown = queue.items(kinds=sel["kind"], classes=sel["class_name"], splits=sel["split"],
                    annotators=sel["annotator"], statuses=sel["status"], image_ids=ids)
n = len(shown)  # one row per item: identical copies of an image share one decision
if not n:
    st.info("No items match: every analysis that ran found nothing here, or the filters "
            "exclude everything." if len(queue) else "No findings to review in this dataset.")
    st.stop()
pos = min(int(st.session_state.get("rv_pos", 0)), n - 1)
st.session_state["rv_pos"] = pos
item = shown.iloc[pos].to_dict()


def _move(step: int) -> None:
    st.session_state["rv_pos"] = max(0, min(n - 1, st.session_state["rv_pos"] + step))


def _decide(status: str) -> None:
    queue.record(item, status, reviewer=st.session_state.get("qa_reviewer", ""),
                 note=st.session_state.get("rv_note") or None, dataset_name=ds.name)
    st.session_state["rv_note"] = ""
    if status != "open":
        _move(1)


nav = st.columns([1, 1, 6])
nav[0].button("Previous", key="rv_prev", on_click=_move, args=(-1,), shortcut="Left",
              disabled=pos == 0, icon=":material/arrow_back:")
nav[1].button("Next", key="rv_next", on_click=_move, args=(1,), shortcut="Right",
              disabled=pos >= n - 1, icon=":material/arrow_forward:")
nav[2].markdown(f"Item **{pos + 1}** of **{n}** · keys: ← → move, 1 confirm, "
                "2 not an issue, 3 fixed, 0 re-open")

left, right = st.columns([3, 2])
with left:
    img, err = cached.review_image(dataset_key(), ds, item["item_key"], item)
    if img is None:
        st.info("A dataset-level finding: no single image shows it.")
    else:
        st.image(img, caption=f"{item['file_name'] or ''}"
                 + (f" ({err})" if err else ""), width="stretch")
    related = vr.related_images(ds, item)
    fnames = cached.file_names(dataset_key(), ds) if related else {}
    for col, (j, thumb, _) in zip(st.columns(4) if related else [], related):
        col.image(thumb, caption=f"related: {fnames.get(j, j)}", width="stretch")
with right:
    score = "" if item["score"] != item["score"] else f" · score {item['score']:.2f}"  # NaN
    st.markdown(f"**{item['kind']}** · {item['analysis']} · {item['severity']}{score}")
    st.write(item["message"] or "")
    copies = queue.copies_of(item)
    if copies:
        st.caption("The same finding on identical copies (same file content), settled by this "
                   "decision too: " + ", ".join(str(cached.file_names(dataset_key(), ds).get(j, j))
                                            for j in copies))
    st.markdown(f"Status: **{item['status'].replace('_', ' ')}**"
                + (f" by {item['decided_by']}" if item["decided_by"] else "")
                + (" · *re-opened: the evidence changed*" if item["reopened"] else ""))
    if item["page"]:
        st.markdown(f"[Open the evidence on the {item['page']} page]"
                    f"(/{review.evidence_link(item)})")
    st.text_input("Note (optional)", key="rv_note")
    if not reviewer.strip():
        st.warning("Enter your name in the sidebar to record decisions.")
    b = st.columns(2)
    for i, (status, label, key) in enumerate(review.DECISION_BUTTONS):
        col = b[i % 2]
        col.button(label, key=f"rv_do_{status}", on_click=_decide, args=(status,),
                   shortcut=key, disabled=not reviewer.strip(), width="stretch")
    with st.expander("History of this item"):
        st.dataframe(review.history_table(store, item["item_key"]), hide_index=True,
                     key="rv_history")

prog = queue.progress()
st.progress(prog["reviewed"] / max(prog["total"], 1),
            text=f"{prog['reviewed']} of {prog['total']} items reviewed")
by_kind, reviewers = cached.review_progress(queue)  # redrawn after a decision only
c1, c2 = st.columns([3, 2])
c1.plotly_chart(by_kind, key="rv_progress")
c2.container(key="rv_reviewers").table(reviewers, hide_index=True)
with st.expander("Exports"):  # files are made when a button is clicked, not on every rerun
    e = st.columns(3)
    for col, fmt in zip(e[:2], ("csv", "json")):
        col.download_button(f"Decisions ({fmt.upper()})", key=f"rv_dl_{fmt}", on_click="ignore",
                            file_name=f"decisions.{fmt}", data=lambda fmt=fmt: decisions_text(
                                dataset_decisions(ds, store=store), fmt))
    e[2].download_button("Relabel tasks (Label Studio)", key="rv_dl_relabel", on_click="ignore",
                         file_name="relabel_tasks.json",
                         data=lambda: relabel_text(ds, queue.table()))
window = shown.iloc[pos: pos + TABLE_ROWS]
st.caption(f"Items {pos + 1}–{pos + len(window)} of {n} from the current one"
           + ("; the exports hold them all." if n > TABLE_ROWS else "."))
st.dataframe(window[list(review.QUEUE_TABLE)], hide_index=True, key="rv_table")
