"""The health report as one self-contained HTML file: plotly.js inlined, thumbnails embedded
as data URIs, no request to any server, so it opens offline and can be mailed."""

from __future__ import annotations

import html
from functools import lru_cache

import pandas as pd

from qa.report.config import AREAS

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1100px;color:#222;padding:0 16px}
h1{margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}
.muted{color:#666}.score{font-size:48px;font-weight:700}
.chip{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;
font-weight:600;text-transform:uppercase}
table{border-collapse:collapse;width:100%;font-size:14px;margin:8px 0}
th,td{border-bottom:1px solid #eee;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#fafafa}.grid{display:flex;flex-wrap:wrap;gap:16px}
.grid>div{flex:1 1 480px;min-width:320px}
.grid>div.gauge{flex:0 0 380px;min-width:0}.thumbs img{height:110px;margin:4px;
border:1px solid #ccc}.thumbs figure{display:inline-block;margin:0 6px 6px 0;font-size:11px;
text-align:center}details{margin:4px 0 12px 0}summary{cursor:pointer}
code{word-break:break-all}
"""


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def _num(v) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if float(v).is_integer() and abs(v) >= 1 else f"{v:.3g}"


def _chip(status: str) -> str:
    from qa.viz.report import STATUS_COLORS

    return (f"<span class='chip' style='background:{STATUS_COLORS.get(status, '#999')}'>"
            f"{_e(status)}</span>")


def _fig(fig) -> str:
    width = "100%" if fig.layout.width is None else f"{fig.layout.width}px"
    return fig.to_html(full_html=False, include_plotlyjs=False, default_width=width,
                       config={"displaylogo": False, "responsive": True})


def _checks_table(checks) -> str:
    rows = []
    for c in checks:
        detail = _e(c.reason) if c.status == "skipped" else _e(c.action)
        if c.basis:
            detail += (f"<div class='muted'><b>How the value was obtained</b>: "
                       f"{_e(c.basis)}</div>")
        est = "≈ " if (c.basis or "").startswith("estimate") else ""
        rows.append(f"<tr><td>{_chip(c.status)}</td><td><b>{_e(c.title)}</b><br>"
                    f"<span class='muted'>{_e(c.id)} · {_e(c.metric)}</span></td>"
                    f"<td>{est}{_num(c.value)}</td><td>{_e(c.threshold)}</td>"
                    f"<td>{c.n_evidence}</td><td>{c.points_lost:.1f}</td><td>{detail}</td></tr>")
    return ("<table><tr><th>status</th><th>check</th><th>value</th><th>threshold</th>"
            "<th>evidence</th><th>points lost</th><th>action / reason</th></tr>"
            + "".join(rows) + "</table>")


def _evidence(c, thumbnails: dict, shown: dict) -> str:
    """The evidence of a warning/failing check; ``shown`` (evidence -> check title) avoids
    repeating the same evidence under several checks of an area."""
    if c.status not in ("warn", "fail") or not (c.n_evidence or c.n_dismissed):
        return ""
    same = (c.evidence_kinds, c.evidence_image_ids, c.evidence_messages)
    if c.n_evidence and same in shown:
        return (f"<p><b>{_e(c.title)}</b>: the same {c.n_evidence} item(s) of evidence as "
                f"<i>{_e(shown[same])}</i>.</p>")
    shown[same] = c.title
    parts = [f"<details open><summary><b>{_e(c.title)}</b>: {c.n_evidence} item(s) of "
             "evidence" + (f", {c.n_dismissed} dismissed by reviewers "
                           f"({_e(', '.join(f'{k}: {v}' for k, v in c.dismissed_by.items()))})"
                           if c.n_dismissed else "") + "</summary><ul>"]
    parts += [f"<li>{_e(m)}</li>" for m in c.evidence_messages]
    parts.append("</ul>")
    if c.evidence_image_ids:
        ids = ", ".join(map(str, c.evidence_image_ids[:30]))
        more = " ..." if len(c.evidence_image_ids) > 30 else ""
        parts.append(f"<div class='muted'>images: {ids}{more}; in the app: "
                     f"<code>/{_e(c.link or '')}</code></div>")
    thumbs = [(i, thumbnails[i]) for i in c.evidence_image_ids if i in thumbnails]
    if thumbs:
        parts.append("<div class='thumbs'>" + "".join(
            f"<figure><img alt='image {i}' src='{uri}'><figcaption>image {i}</figcaption>"
            "</figure>" for i, uri in thumbs[:8]) + "</div>")
    parts.append("</details>")
    return "".join(parts)


def _comparison(comparison) -> str:
    if comparison is None:
        return ""
    ch = comparison.checks
    ch = ch[ch["change"] != "unchanged"]
    rows = "".join(
        f"<tr><td>{_e(r.title)}</td><td>{_e(r.old_status)} ({_num(r.old_value)})</td>"
        f"<td>{_e(r.new_status)} ({_num(r.new_value)})</td><td>{_e(r.change)}</td></tr>"
        for r in ch.itertuples(index=False))
    return (f"<h2>Compared with the report of {_e(comparison.old_created)}</h2>"
            f"<p>{_e(comparison.summary())}</p>"
            + ("<table><tr><th>check</th><th>before</th><th>now</th><th>change</th></tr>"
               + rows + "</table>" if rows else "<p>No check changed.</p>"))


def render_html(report, *, history: pd.DataFrame | None = None, comparison=None) -> str:
    """The report as one HTML document (str). ``history``: earlier reports
    (:func:`qa.report.history.load_history`) for the trend chart; ``comparison``: a
    :class:`qa.report.compare.Comparison` with an earlier version."""
    from qa.viz import report as vr

    ds = report.dataset or {}
    counts = report.status_counts()
    score = "—" if report.score is None else f"{report.score:.0f}"
    review = report.review or {}
    review_line = (f"Reviewers dismissed {review.get('n_dismissed', 0)} finding(s) as not an "
                   "issue" + (" (" + ", ".join(f"{k}: {v}" for k, v in
                                               review.get("by", {}).items()) + ")"
                              if review.get("by") else "") + "."
                   if review.get("available") else
                   review.get("error") or "Review decisions: not available in this installation.")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Health report: {_e(ds.get('name'))}</title><style>{_CSS}</style>",
        f"<script type='text/javascript'>{_plotly_js()}</script></head><body>",
        f"<h1>Dataset health report: {_e(ds.get('name'))}</h1>",
        (f"<div class='muted'>{_e(report.created)} · {ds.get('images', '?')} images · "
         f"{ds.get('annotations', '?')} annotations · annotators: "
         f"{_e(', '.join(ds.get('annotators') or []) or '—')} · config: "
         f"{_e(report.config_source)}</div>"),
        (f"<p><span class='score' style='color:{vr.score_color(report.score)}'>{score}"
         f"</span> / 100 &nbsp; {counts['fail']} failed, {counts['warn']} warnings, "
         f"{counts['pass']} passed, {counts['skipped']} skipped</p>"),
        f"<p class='muted'>{_e(review_line)}</p>",
        "<div class='grid'><div class='gauge'>", _fig(vr.score_gauge(report, width=370)),
        "</div><div>",
        _fig(vr.area_scores_bar(report)), "</div></div>",
        _fig(vr.points_lost_bar(report)),
    ]
    if history is not None and len(history) > 1:
        parts.append(_fig(vr.trend_line(history)))
    parts.append(_comparison(comparison))
    for area in AREAS:
        checks = [c for c in report.checks if c.area == area]
        if not checks:
            continue
        sub = report.area_scores.get(area)
        parts.append(f"<h2>{_e(area.capitalize())}: "
                     f"{'not measured' if sub is None else f'{sub:.0f} / 100'}</h2>")
        parts.append(_checks_table(checks))
        shown: dict = {}
        parts += [_evidence(c, report.thumbnails, shown) for c in checks]
    parts.append("<h2>Analyses</h2><table><tr><th>analysis</th><th>status</th>"
                 "<th>seconds</th><th>reason</th></tr>")
    for name, a in report.analyses.items():
        sec = a.get("seconds")
        parts.append(f"<tr><td>{_e(name)}</td><td>{_e(a['status'])}</td>"
                     f"<td>{'' if sec is None else f'{sec:.2f}'}</td>"
                     f"<td>{_e(a.get('reason'))}</td></tr>")
    parts.append("</table><h2>How the score is computed</h2><p>Each check earns 1 (pass), "
                 "0.5 (warn) or 0 (fail) times its weight; an area's sub-score is the "
                 "weighted mean x 100; the score is the mean of the measured areas weighted "
                 "by " + _e(", ".join(f"{a} {w:g}" for a, w in report.area_weights.items()))
                 + ". Skipped checks count neither for nor against.</p><table>"
                 + "".join(f"<tr><td>{_e(c.title)}</td><td>{_e(c.explanation)}</td></tr>"
                           for c in report.checks) + "</table></body></html>")
    return "".join(parts)
