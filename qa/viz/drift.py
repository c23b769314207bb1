"""Figures and small display tables of the Compare page (qa.drift results)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from qa.drift import IMAGE_FEATURES, PSI_MAJOR, PSI_MODERATE
from qa.viz.common import PALETTE, style

COLOR_A, COLOR_B = PALETTE[0], PALETTE[1]
DRIFT_COLOR, STEADY_COLOR = "#D55E00", "#7f7f7f"
# legends above the plot, centred: clear of the title (left) and the tool bar (right)
LEGEND = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="center", x=0.5)
BOX_FEATURES = {"box_size": "box size (side / image side)", "box_aspect": "box aspect (w / h)"}
SIGNAL_LABELS = {"labels": "Labels", "images": "Image statistics", "embeddings": "Embeddings",
                 "coverage": "Coverage"}


BADGES = {"drift": ":orange-badge[drift]", "no drift": ":green-badge[no drift]",
          "not measured": ":gray-badge[not measured]"}


def signal_cards(result) -> list[dict]:
    """One dict per signal for the page's verdict row: label, value ("drift", "no drift",
    "not measured"), its badge (Streamlit markdown) and what it found, in words."""
    cards = []
    for r in result.signals.itertuples(index=False):
        if not r.measured:
            value, text = "not measured", r.reason or ""
        else:
            value = "drift" if r.drift else "no drift"
            text = (r.what.replace("; ", " · ") if r.what else
                    f"{r.n_tests} test{'s' if r.n_tests > 1 else ''}, none drifting")
        cards.append({"label": SIGNAL_LABELS.get(r.signal, r.signal), "value": value,
                      "badge": BADGES[value], "text": text})
    return cards


def p_text(p) -> str:
    """A p-value for people: "0.034", "2.1e-05", "< 1e-300" (NaN: "")."""
    if p is None or not np.isfinite(p):
        return ""
    if p < 1e-300:
        return "< 1e-300"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _with_p_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in ("p_value", "p_adjusted", "p_asymptotic"):
        if c in out.columns:
            out[c] = [p_text(v) for v in out[c].astype(float)]
    return out


def tests_table(result) -> pd.DataFrame:
    """The tests as a person reads them (p-values as text, drift first)."""
    t = result.tests
    if t.empty:
        return t
    out = t[["signal", "label", "test", "statistic", "p_value", "p_adjusted", "effect_name",
             "effect", "material", "drift", "p_method"]].copy()
    out = out.sort_values(["drift", "p_adjusted"], ascending=[False, True], kind="stable")
    return _with_p_text(out).reset_index(drop=True)


def class_table(result) -> pd.DataFrame:
    """The class mix with shares and changes in percent, p-values as text."""
    cm = result.class_mix.copy()
    for c in ("share_a", "share_b", "change", "ci_low", "ci_high", "image_share_a",
              "image_share_b"):
        if c in cm.columns:
            cm[c] = (cm[c] * 100).round(2)
    cm = cm.rename(columns={"share_a": "% of A", "share_b": "% of B", "change": "change (pp)",
                            "ci_low": "95% low", "ci_high": "95% high",
                            "images_a": "images of A holding it",
                            "images_b": "images of B holding it",
                            "image_share_a": "% of A's images", "image_share_b": "% of B's images"})
    return _with_p_text(cm)


def features_table(result) -> pd.DataFrame:
    """The image statistics table (Evidently's columns, PSI beside its sampling noise)."""
    f = result.image_features
    if f.empty:
        return f
    out = f[["label", "test", "statistic", "p_value", "psi", "psi_noise", "wasserstein_norm",
             "median_a", "median_b", "n_a", "n_b"]].rename(columns={
                 "label": "feature", "statistic": "KS D", "psi_noise": "PSI from sampling",
                 "wasserstein_norm": "Wasserstein / std(A)"})
    return _with_p_text(out)


def class_change_chart(result, top: int = 20) -> go.Figure:
    """Per class, its share's change B - A with the 95 % interval (significant changes in
    orange), the most changed first."""
    cm = result.class_mix.head(top).iloc[::-1]
    colors = [DRIFT_COLOR if s else STEADY_COLOR for s in cm["significant"]]
    fig = go.Figure(go.Bar(
        x=cm["change"] * 100, y=cm["name"].astype(str), orientation="h", marker_color=colors,
        error_x=dict(type="data", symmetric=False,
                     array=(cm["ci_high"] - cm["change"]) * 100,
                     arrayminus=(cm["change"] - cm["ci_low"]) * 100),
        customdata=np.c_[cm["share_a"] * 100, cm["share_b"] * 100, cm["count_a"],
                         cm["count_b"]],
        hovertemplate="%{y}: %{customdata[0]:.1f}% → %{customdata[1]:.1f}% of the labels "
                      "(%{customdata[2]} → %{customdata[3]})<extra></extra>"))
    fig.add_vline(x=0, line_color="#444")
    fig.update_layout(xaxis_title=f"change of the class's share, {result.name_b} − "
                                  f"{result.name_a} (percentage points, 95% interval)",
                      yaxis_title=None)
    return style(fig, title="Class mix", height=max(220, 40 + 28 * len(cm)))


def psi_chart(result) -> go.Figure:
    """PSI per image statistic, with the 0.1 (moderate) and 0.25 (major) lines and, per
    feature, the PSI that sampling alone gives at these sizes (a black tick)."""
    f = result.image_features
    colors = [DRIFT_COLOR if v > PSI_MAJOR else (PALETTE[1] if v > PSI_MODERATE else
                                                 STEADY_COLOR) for v in f["psi"]]
    fig = go.Figure([
        go.Bar(x=f["psi"], y=f["label"], orientation="h", marker_color=colors, name="PSI",
               hovertemplate="%{y}: PSI %{x:.3f}<extra></extra>"),
        go.Scatter(x=f["psi_noise"], y=f["label"], mode="markers", name="from sampling alone",
                   marker=dict(symbol="line-ns-open", size=18, color="#222",
                               line=dict(width=2)),
                   hovertemplate="%{y}: two samples of one population show PSI %{x:.3f} "
                                 "on average<extra></extra>")])
    for v, text in ((PSI_MODERATE, "moderate"), (PSI_MAJOR, "major")):
        fig.add_vline(x=v, line_dash="dash", line_color="#888", annotation_text=text)
    fig.update_layout(xaxis_title="population stability index", yaxis_title=None,
                      yaxis_autorange="reversed", legend=LEGEND)
    return style(fig, title="Image statistics: PSI", height=max(240, 40 + 26 * len(f)))


def distribution_chart(result, feature: str) -> go.Figure:
    """A's and B's distribution of one image statistic (``IMAGE_FEATURES``) or box feature
    (``BOX_FEATURES``), as overlaid normalised histograms."""
    if feature in IMAGE_FEATURES:
        df, label = result.image_values, IMAGE_FEATURES[feature]
    elif feature in BOX_FEATURES:
        df, label = result.box_values, BOX_FEATURES[feature]
    else:
        raise ValueError(f"unknown feature {feature!r}; features: "
                         f"{[*IMAGE_FEATURES, *BOX_FEATURES]}")
    fig = go.Figure()
    if len(df):
        x = pd.to_numeric(df[feature], errors="coerce")
        lo, hi = np.nanpercentile(x, [0.5, 99.5]) if x.notna().any() else (0, 1)
        for side, name, color in (("a", result.name_a, COLOR_A), ("b", result.name_b, COLOR_B)):
            v = x[(df["side"] == side).to_numpy()].dropna()
            fig.add_trace(go.Histogram(x=v, name=f"{name} ({len(v):,})", marker_color=color,
                                       histnorm="probability", opacity=0.6,
                                       xbins=dict(start=lo, end=hi, size=(hi - lo) / 40
                                                  if hi > lo else 1)))
    fig.update_layout(barmode="overlay", xaxis_title=label, yaxis_title="share",
                      legend=LEGEND)
    return style(fig, title=label, height=340)


def cluster_chart(result, top: int = 12) -> go.Figure:
    """Share of A's and of B's images in each cluster, the most significant change first."""
    c = result.clusters.head(top)
    names = [f"cluster {k}" for k in c["cluster"]]
    fig = go.Figure([
        go.Bar(x=names, y=c["share_a"] * 100, name=result.name_a, marker_color=COLOR_A,
               customdata=c["n_a"], hovertemplate="%{y:.1f}% (%{customdata} images)"),
        go.Bar(x=names, y=c["share_b"] * 100, name=result.name_b, marker_color=COLOR_B,
               customdata=c["n_b"], hovertemplate="%{y:.1f}% (%{customdata} images)")])
    fig.update_layout(barmode="group", yaxis_title="share of the side's images (%)",
                      legend=LEGEND)
    space = result.embedding.get("cluster_space", "embeddings")
    return style(fig, title=f"Clusters of the pooled {space}, most significant change first",
                 height=340)


def coverage_chart(result) -> go.Figure:
    """How far each image of B is from its nearest image of A, in units of A's own fence
    (its space's: embeddings or image statistics, whichever it is farther in); beyond 1 it is
    not covered."""
    c = result.coverage
    fig = go.Figure()
    if len(c):
        unc = c["is_uncovered"].to_numpy(bool)
        x = np.log2(np.clip(c["excess"].to_numpy(float), 1 / 64, 64))
        for mask, name, color in ((~unc, "covered", COLOR_A), (unc, "beyond the fence",
                                                              DRIFT_COLOR)):
            fig.add_trace(go.Histogram(x=x[mask], name=f"{name} ({int(mask.sum()):,})",
                                       marker_color=color, nbinsx=40))
        fig.add_vline(x=0, line_dash="dash", line_color=DRIFT_COLOR,
                      annotation_text=f"{result.name_a}'s fence")
    fig.update_layout(barmode="stack", yaxis_title=f"images of {result.name_b}", legend=LEGEND,
                      xaxis_title=f"log2 (distance to the nearest image of {result.name_a} / "
                                  "its fence)")
    return style(fig, title="Coverage", height=320)


def cluster_caption(row, name_a: str, name_b: str) -> str:
    """"Cluster 3: 2% → 21% (4 → 42 images), more in B" for a clusters row."""
    return (f"**Cluster {int(row['cluster'])}**: {row['share_a']:.0%} of {name_a} → "
            f"{row['share_b']:.0%} of {name_b} ({int(row['n_a'])} → {int(row['n_b'])} "
            f"images){' · significant' if row['significant'] else ''}")


def embedding_caption(result) -> str:
    """One line on how the embedding signal was measured: the MMD, the classifier's AUC with
    its interval, what the clusters are fitted on."""
    e = result.embedding
    text = f"MMD test: {e.get('method')}, {e.get('p_method')}, model {e.get('model_id')}."
    c = e.get("classifier")
    if c:
        text += (f" A classifier tells {result.name_b} from {result.name_a} with AUC "
                 f"{c['auc']:.2f} (95% {c['ci_low']:.2f}-{c['ci_high']:.2f}; 0.5 = not at "
                 f"all), p {p_text(c['p_value'])}.")
    if e.get("cluster_space"):
        text += f" Clusters of the {e['cluster_space']}."
    return text


def cluster_examples(row) -> tuple[str, tuple]:
    """("b", B's examples) for a cluster more frequent in B, else ("a", A's examples): the
    side whose images show what the cluster is (B's new scenes, A's missing ones)."""
    if (row["change"] > 0 and row["examples_b"]) or not row["examples_a"]:
        return "b", tuple(row["examples_b"])
    return "a", tuple(row["examples_a"])


def result_json(result) -> bytes:
    """The comparison as a JSON download."""
    import json

    return json.dumps(result.to_dict(), indent=1).encode("utf-8")
