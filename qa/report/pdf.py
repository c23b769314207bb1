"""The health report as a printable PDF: summary and score on the first page, one section per
area, charts as images.

Why fpdf2 + matplotlib: both install from wheels with pip alone (``make run`` sets up nothing
else), fpdf2 is pure Python, and matplotlib draws charts without a browser. The
alternatives need more: plotly's static export (kaleido) drives a Chrome, WeasyPrint needs
Pango/cairo system libraries, wkhtmltopdf is a system binary. The text font is the DejaVu Sans
that ships inside matplotlib (full Unicode: names, dashes, arrows), so no system font is read.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from qa.report.config import AREAS

# A4 portrait in millimetres; text width = 210 - 2 x margin.
MARGIN_MM = 15
TEXT_W = 210 - 2 * MARGIN_MM
CHART_DPI = 120  # sharp on paper at the printed width, and quick to draw
# Evidence sentences printed per warning/failing check (the JSON and HTML hold more).
PDF_MESSAGES = 2
# Warning/failing checks listed under "What to fix first", costliest first.
PDF_FIX_FIRST = 6
_RGB = {"pass": (0, 158, 115), "warn": (230, 159, 0), "fail": (213, 94, 0),
        "skipped": (153, 153, 153)}


def _font_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _png(fig) -> io.BytesIO:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=CHART_DPI, bbox_inches="tight")
    buf.seek(0)
    return buf


def _hex(status: str) -> str:
    r, g, b = _RGB[status]
    return f"#{r:02x}{g:02x}{b:02x}"


def _score_status(v: float | None) -> str:
    from qa.viz.report import SCORE_BANDS

    if v is None:
        return "skipped"
    for lo, hi, s in SCORE_BANDS:
        if lo <= v < hi or (hi == 100 and v == 100):
            return s
    return "skipped"


def area_chart(report) -> io.BytesIO:
    """Sub-score per area as a horizontal bar chart (PNG)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.6))
    ax = fig.subplots()
    vals = [report.area_scores.get(a) for a in AREAS]
    ax.barh(list(AREAS), [v or 0 for v in vals],
            color=[_hex(_score_status(v)) for v in vals])
    for i, v in enumerate(vals):
        ax.text((v or 0) + 1, i, "not measured" if v is None else f"{v:.0f}", va="center",
                fontsize=9)
    ax.set_xlim(0, 115)
    ax.invert_yaxis()
    ax.set_xlabel("sub-score (0-100)")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def trend_chart(history: pd.DataFrame) -> io.BytesIO:
    """The score over earlier reports (PNG)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.4))
    ax = fig.subplots()
    x = pd.to_datetime(history["created"], utc=True, format="ISO8601")
    ax.plot(x, history["score"], marker="o", color="#333333")
    ax.set_ylim(0, 105)
    ax.set_ylabel("score")
    ax.spines[["top", "right"]].set_visible(False)
    fig.autofmt_xdate()
    return _png(fig)


def render_pdf(report, *, history: pd.DataFrame | None = None, comparison=None) -> bytes:
    """The report as PDF bytes (A4)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_margins(MARGIN_MM, MARGIN_MM)
    pdf.set_auto_page_break(True, margin=MARGIN_MM)
    font = str(_font_path())
    pdf.add_font("dejavu", "", font)
    pdf.add_font("dejavu", "B", font)  # one face: bold is simulated by size and colour
    ds = report.dataset or {}
    pdf.set_title(f"Health report: {ds.get('name')}")
    pdf.set_creator("dataset-qa")

    def text(s: str, size: float = 10, *, bold: bool = False, color=(34, 34, 34), h=5.0):
        pdf.set_font("dejavu", "B" if bold else "", size)
        pdf.set_text_color(*color)
        pdf.multi_cell(TEXT_W, h, s, new_x="LMARGIN", new_y="NEXT")

    def chart(title: str, png: io.BytesIO):
        """A heading and its chart, moved to a new page together when they do not fit."""
        from PIL import Image

        w, h = Image.open(png).size
        png.seek(0)
        heading(title, 13, need_mm=TEXT_W * 0.9 * h / w + 15)
        pdf.image(png, w=TEXT_W * 0.9)

    def heading(s: str, size: float = 15, *, need_mm: float = 50):
        if pdf.get_y() > 297 - MARGIN_MM - need_mm:
            pdf.add_page()
        pdf.ln(3)
        text(s, size, bold=True, h=size * 0.5)
        pdf.set_draw_color(200, 200, 200)
        pdf.line(MARGIN_MM, pdf.get_y() + 1, 210 - MARGIN_MM, pdf.get_y() + 1)
        pdf.ln(3)

    # ---- page 1: summary
    pdf.add_page()
    text(f"Dataset health report: {ds.get('name')}", 18, bold=True, h=9)
    text(f"{report.created} · {ds.get('images', '?')} images · "
         f"{ds.get('annotations', '?')} annotations · annotators: "
         f"{', '.join(ds.get('annotators') or []) or '—'}", 8.5, color=(100, 100, 100))
    pdf.ln(2)
    counts = report.status_counts()
    score = "—" if report.score is None else f"{report.score:.0f}"
    text(f"Health score {score} / 100", 22, bold=True,
         color=_RGB[_score_status(report.score)], h=11)
    text(f"{counts['fail']} failed · {counts['warn']} warnings · {counts['pass']} passed · "
         f"{counts['skipped']} skipped (could not run; not counted)", 10)
    rv = report.review or {}
    if rv.get("available"):
        by = ", ".join(f"{k}: {v}" for k, v in (rv.get("by") or {}).items())
        text(f"Reviewers dismissed {rv.get('n_dismissed', 0)} finding(s) as not an issue"
             + (f" ({by})" if by else "") + ".", 8.5, color=(100, 100, 100))
    elif rv.get("error"):
        text(rv["error"], 8.5, color=(100, 100, 100))
    pdf.image(area_chart(report), w=TEXT_W * 0.75)
    worst = sorted([c for c in report.checks if c.status in ("fail", "warn")],
                   key=lambda c: c.points_lost, reverse=True)
    if worst:
        heading("What to fix first", 12, need_mm=30)
        told = set()  # a basis shared by several checks is printed once
        for c in worst[:PDF_FIX_FIRST]:
            text(f"[{c.status.upper()}] {c.title} ({_value(c)}; −{c.points_lost:.1f} points)"
                 f" — {c.action}", 9, color=_RGB[c.status] if c.status == "fail"
                 else (34, 34, 34), h=4.5)
            if c.basis and c.basis not in told:
                told.add(c.basis)
                text(f"    how the value was obtained: {c.basis}", 7.5, color=(100, 100, 100),
                     h=3.6)
    if history is not None and len(history) > 1:
        chart("Trend against earlier reports", trend_chart(history))
    if comparison is not None:
        heading(f"Compared with the report of {comparison.old_created}", 12, need_mm=30)
        text(comparison.summary(), 9)
        for r in comparison.checks.itertuples(index=False):
            if r.change != "unchanged":
                text(f"{r.title}: {r.old_status} -> {r.new_status} ({r.change})", 8.5)

    # ---- every check in one table, area by area (no page per area: a manager reads it in
    # two minutes)
    heading("All checks", 12, need_mm=40)
    pdf.set_font("dejavu", "", 8)
    pdf.set_text_color(34, 34, 34)
    with pdf.table(col_widths=(14, 70, 18, 44, 14, 14), line_height=4.2,
                   text_align=("LEFT", "LEFT", "RIGHT", "LEFT", "RIGHT", "RIGHT")) as table:
        table.row(["status", "check", "value", "threshold", "items", "−pts"])
        for area in AREAS:
            checks = [c for c in report.checks if c.area == area]
            if not checks:
                continue
            sub = report.area_scores.get(area)
            row = table.row()
            row.cell(f"{area.capitalize()}: "
                     f"{'not measured' if sub is None else f'{sub:.0f} / 100'}", colspan=6)
            for c in checks:
                row = table.row()
                pdf.set_text_color(*_RGB[c.status])
                row.cell(c.status.upper())
                pdf.set_text_color(34, 34, 34)
                row.cell(c.title if c.status != "skipped" else f"{c.title} ({c.reason})")
                row.cell(_value(c))
                row.cell(c.threshold)
                row.cell(str(c.n_evidence))
                row.cell(f"{c.points_lost:.1f}")

    # ---- the evidence of what warns or fails, briefly
    heading("Evidence", 12, need_mm=30)
    shown: dict[tuple, str] = {}  # evidence already printed -> its check
    for c in worst:
        text(f"{c.title} ({c.status})", 9.5, bold=True, color=_RGB[c.status], h=4.6)
        if c.n_dismissed:
            text(f"{c.n_dismissed} item(s) dismissed by reviewers: "
                 + ", ".join(f"{k}: {v}" for k, v in c.dismissed_by.items()), 8, h=4)
        same = (c.evidence_image_ids, c.evidence_messages)
        if c.n_evidence and same in shown:
            text(f"The same {c.n_evidence} item(s) as \"{shown[same]}\".", 8, h=4)
            continue
        shown[same] = c.title
        for m in c.evidence_messages[:PDF_MESSAGES]:
            text(f"• {m}", 8, h=4)
        if c.evidence_image_ids:
            ids = ", ".join(map(str, c.evidence_image_ids[:20]))
            text(f"Images ({c.n_evidence} item(s)): {ids}"
                 + (" ..." if len(c.evidence_image_ids) > 20 else ""), 7.5,
                 color=(100, 100, 100), h=3.8)
    pdf.ln(2)
    text("Analyses: " + "; ".join(
        f"{name} {a['status']}" + (f" ({a['reason']})" if a.get("reason") else "")
        for name, a in report.analyses.items()), 7.5, color=(100, 100, 100), h=3.8)
    return bytes(pdf.output())


def _value(c) -> str:
    """A check's value for print: "—" when skipped, "≈" before an estimate."""
    if c.value is None:
        return "—"
    est = "≈ " if (c.basis or "").startswith("estimate") else ""
    return f"{est}{c.value:.3g}"
