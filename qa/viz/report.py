"""Figures of the health report (plotly), shared by the page and the HTML export."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from qa.report.config import AREAS
from qa.viz.common import style

# Traffic-light colours (colour-blind-safe Okabe-Ito green / orange / vermillion, grey).
STATUS_COLORS = {"pass": "#009E73", "warn": "#E69F00", "fail": "#D55E00", "skipped": "#999999"}
# Score bands for the gauge and the sub-score bars: below 50 red, 50-80 amber, 80+ green.
SCORE_BANDS = ((0, 50, "fail"), (50, 80, "warn"), (80, 100, "pass"))


def score_color(score: float | None) -> str:
    if score is None:
        return STATUS_COLORS["skipped"]
    for lo, hi, status in SCORE_BANDS:
        if lo <= score < hi or (hi == 100 and score == 100):
            return STATUS_COLORS[status]
    return STATUS_COLORS["skipped"]


def score_gauge(report, *, height: int = 260, width: int | None = None) -> go.Figure:
    """The overall score as a gauge (0-100, bands red / amber / green)."""
    # gauge only: the number is in the title (a gauge's own number is placed beside the dial
    # in narrow containers and gets clipped)
    title = ("No check could run" if report.score is None
             else f"Health score {report.score:.0f} / 100")
    fig = go.Figure(go.Indicator(
        mode="gauge", value=report.score if report.score is not None else 0,
        gauge={"axis": {"range": [0, 100]}, "bar": {"color": "#333333", "thickness": 0.3},
               "steps": [{"range": [lo, hi], "color": STATUS_COLORS[s]}
                         for lo, hi, s in SCORE_BANDS]},
        title={"text": title}))
    fig = style(fig, height=height)
    fig.update_layout(margin={"l": 30, "r": 30, "t": 50, "b": 10}, width=width)
    return fig


def area_scores_bar(report, *, height: int = 300) -> go.Figure:
    """One horizontal bar per area (0-100); areas with no check that ran are shown empty and
    labelled "not measured"."""
    areas = list(AREAS)
    vals = [report.area_scores.get(a) for a in areas]
    fig = go.Figure(go.Bar(
        y=areas, x=[v if v is not None else 0 for v in vals], orientation="h",
        marker_color=[score_color(v) for v in vals],
        text=[f"{v:.0f}" if v is not None else "not measured" for v in vals],
        textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{text}<extra></extra>"))
    fig.update_xaxes(range=[0, 112], title="sub-score (0-100)")
    fig.update_yaxes(autorange="reversed")
    return style(fig, title="Sub-score per area", height=height)


def points_lost_bar(report, *, height: int | None = None) -> go.Figure:
    """Where the score's missing points went: one bar per warning/failing check."""
    rows = [c for c in report.checks if c.points_lost > 0]
    rows.sort(key=lambda c: c.points_lost, reverse=True)
    fig = go.Figure(go.Bar(
        y=[c.title for c in rows], x=[c.points_lost for c in rows], orientation="h",
        marker_color=[STATUS_COLORS[c.status] for c in rows],
        customdata=[[c.status, c.area] for c in rows],
        hovertemplate="%{y}<br>%{customdata[0]} (%{customdata[1]}): loses %{x:.1f} "
                      "points<extra></extra>"))
    fig.update_xaxes(title="points lost of 100")
    fig.update_yaxes(autorange="reversed")
    if not rows:
        fig.add_annotation(text="No check lost points", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    return style(fig, title="Points lost per check",
                 height=height or max(220, 60 + 28 * len(rows)))


def trend_line(history: pd.DataFrame, *, height: int = 300) -> go.Figure:
    """The score (and each area's sub-score) over earlier reports of the same dataset.
    ``history``: created, score and one column per area (:func:`qa.report.history.load_history`)."""
    fig = go.Figure()
    if len(history):
        x = pd.to_datetime(history["created"], utc=True, format="ISO8601")
        fig.add_trace(go.Scatter(x=x, y=history["score"], mode="lines+markers", name="score",
                                 line={"width": 3, "color": "#333333"}))
        for a in AREAS:
            if a in history and history[a].notna().any():
                fig.add_trace(go.Scatter(x=x, y=history[a], mode="lines+markers", name=a,
                                         line={"width": 1, "dash": "dot"}))
    else:
        fig.add_annotation(text="No earlier report", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    fig.update_yaxes(range=[0, 105], title="score")
    return style(fig, title="Trend against earlier reports", height=height)


def checks_table(report, *, statuses=None) -> pd.DataFrame:
    """The traffic-light table: one row per check (worst first within the config order's
    areas), with an app link (``./<page>?image_id=..``) to its evidence where it has one."""
    rank = {"fail": 0, "warn": 1, "pass": 2, "skipped": 3}
    rows = []
    for i, c in enumerate(report.checks):
        if statuses and c.status not in statuses:
            continue
        value = None if c.value is None else float(c.value)
        rows.append({
            "status": c.status, "area": c.area, "check": c.title,
            "value": value, "threshold": c.threshold, "evidence": c.n_evidence,
            "dismissed": c.n_dismissed, "points lost": round(c.points_lost, 1),
            "action / reason": c.reason if c.status == "skipped" else c.action,
            "how measured": c.basis,
            "link": f"./{c.link}" if c.link is not None and c.n_evidence else None,
            "_order": (rank[c.status], i)})
    df = pd.DataFrame(rows, columns=["status", "check", "link", "value", "threshold",
                                     "evidence", "dismissed", "points lost", "area",
                                     "action / reason", "how measured", "_order"])
    return df.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


def traffic_lights(table: pd.DataFrame):
    """:func:`checks_table` output with its status cells coloured (a pandas Styler)."""
    return table.style.map(lambda s: f"background-color: {STATUS_COLORS.get(s, '#999999')}; "
                                     "color: white; font-weight: 600", subset=["status"])


def score_metrics(report, history: pd.DataFrame | None = None) -> list[dict]:
    """The score and each area's sub-score as st.metric arguments (label, value, delta
    against the previous report in ``history``, help)."""
    prev = history.iloc[-2] if history is not None and len(history) > 1 else None

    def delta(v, col):
        old = None if prev is None else prev.get(col)
        return None if v is None or old is None or pd.isna(old) else round(v - float(old), 1)

    def fmt(v):
        return "—" if v is None else f"{v:.0f}"

    out = [{"label": "Health score", "value": fmt(report.score),
            "delta": delta(report.score, "score"),
            "help": "0-100: areas weighted; each check earns pass 1, warn 0.5, fail 0"}]
    for area, v in report.area_scores.items():
        out.append({"label": area.capitalize(), "value": fmt(v), "delta": delta(v, area),
                    "help": "no check of this area could run" if v is None else None})
    return out


def explanation_table(report) -> pd.DataFrame:
    """How each check contributes to the score: title, status, points lost, explanation."""
    return pd.DataFrame([{"check": c.title, "status": c.status,
                          "points lost": round(c.points_lost, 2), "explanation": c.explanation}
                         for c in report.checks],
                        columns=["check", "status", "points lost", "explanation"])


def actions_markdown(report) -> str:
    """The warning and failing checks, costliest first, as a markdown list a person can read
    whole: status, title, value, the action, and how the value was obtained (a table cell
    cuts such text off)."""
    rows = sorted([c for c in report.checks if c.status in ("fail", "warn")],
                  key=lambda c: c.points_lost, reverse=True)
    if not rows:
        return "Every check that ran passes."
    out = []
    for c in rows:
        est = "≈ " if (c.basis or "").startswith("estimate") else ""
        value = "—" if c.value is None else f"{est}{c.value:.3g}"
        line = (f"- **{c.status.upper()} · {c.title}** ({value}; {c.threshold}; "
                f"−{c.points_lost:.1f} points): {c.action}")
        if c.basis:
            line += f"  \n  *How the value was obtained:* {c.basis}"
        out.append(line)
    return "\n".join(out)
