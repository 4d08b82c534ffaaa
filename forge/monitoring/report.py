"""The HTML drift report: a verdict, a table, and reference-vs-current plots per feature (drifted first)."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd


def _plot(name: str, ref: pd.Series, cur: pd.Series, numeric: bool) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 2.6), dpi=90)
    if numeric:
        r = pd.to_numeric(ref, errors="coerce").dropna()
        c = pd.to_numeric(cur, errors="coerce").dropna()
        lo, hi = np.nanmin([r.min(), c.min()]), np.nanmax([r.max(), c.max()])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 30)
        ax.hist(r, bins=bins, alpha=0.55, density=True, label="reference", color="#4c72b0")
        ax.hist(c, bins=bins, alpha=0.55, density=True, label="current", color="#dd8452")
    else:
        rf = ref.dropna().astype(str).value_counts(normalize=True)
        cf = cur.dropna().astype(str).value_counts(normalize=True)
        cats = sorted(set(rf.index) | set(cf.index))
        x = np.arange(len(cats))
        ax.bar(x - 0.2, rf.reindex(cats, fill_value=0), 0.4, label="reference", color="#4c72b0")
        ax.bar(x + 0.2, cf.reindex(cats, fill_value=0), 0.4, label="current", color="#dd8452")
        ax.set_xticks(x, cats, rotation=30, fontsize=8)
    ax.set_title(name, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def render(result: dict, reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], title: str) -> str:
    """A self-contained HTML page (images inlined) for `forge drift --html`."""
    feats = sorted(result["features"].items(), key=lambda kv: (not kv[1]["drifted"], kv[0]))
    verdict = "DRIFT" if result["dataset_drift"] else "no dataset drift"
    color = "#c0392b" if result["dataset_drift"] else "#27ae60"
    rows = []
    for name, f in feats:
        stat = "n/a" if f["statistic"] is None else f"{f['statistic']:.4f}"
        p = "" if f["p_value"] is None else f"{f['p_value']:.4g}"
        rows.append(f"<tr class='{'drift' if f['drifted'] else ''}'><td>{html.escape(name)}</td><td>{f['test']}</td>"
                    f"<td>{stat}</td><td>{p}</td><td>{f['threshold']}</td><td>{'yes' if f['drifted'] else 'no'}</td></tr>")
    plots = []
    for name, f in feats:
        if name in reference and name in current:
            img = _plot(name, reference[name], current[name], name in numeric)
            plots.append(f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{img}'>"
                         f"<figcaption>{html.escape(name)}: {f['test']} {'DRIFTED' if f['drifted'] else 'ok'}"
                         f"</figcaption></figure>")
    multi = ""
    for m in result.get("multivariate", {}).values():
        multi += f"<li>{html.escape(m['test'])}: {html.escape(str({k: v for k, v in m.items() if k != 'test'}))}</li>"
    extra = ""
    if result.get("performance_estimate"):
        extra = f"<h2>Estimated performance (no labels)</h2><pre>{html.escape(str(result['performance_estimate']))}</pre>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} tr.drift{{background:#fdecea}} figure{{display:inline-block;margin:8px}}
.verdict{{font-size:22px;color:{color};font-weight:bold}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="verdict">{verdict}: {result['drifted_features']} of {result['n_features']} features drifted
(share {result['drift_share']:.2f}, threshold {result['threshold_share']})</p>
<p>reference rows: {result['rows_reference']}, current rows: {result['rows_current']}</p>
<table><tr><th>feature</th><th>test</th><th>statistic</th><th>p-value</th><th>threshold</th><th>drifted</th></tr>
{''.join(rows)}</table>
{'<h2>Multivariate</h2><ul>' + multi + '</ul>' if multi else ''}{extra}
<h2>Reference vs current</h2>{''.join(plots)}</body></html>"""
