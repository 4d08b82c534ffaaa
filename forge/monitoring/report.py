"""The HTML drift report: a headline coloured by the worst finding, then a table per result, each feature's plot
beside its row (drifted first). Self-contained (images inlined), readable at 1280 px without a horizontal scroll.

The dataset-share rule stays the verdict and is shown as such; the headline's colour comes from the worst thing
any test found, so a report whose rule says "no dataset drift" while a feature or the domain classifier drifted is
amber, not green.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

_COLORS = {"red": "#c0392b", "amber": "#b9770e", "green": "#1e8449"}
_CSS = """body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px;max-width:100%}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:middle;overflow-wrap:anywhere;text-align:left}
tr.drift{background:#fdecea} img{max-width:440px;width:100%;height:auto;display:block}
.headline{font-size:20px;font-weight:bold;padding:10px 14px;border-radius:6px;color:#fff}
.note{color:#555}"""


def _plot(name: str, ref: pd.Series, cur: pd.Series, numeric: bool) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 2.2), dpi=90)
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
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) if isinstance(v, dict) else ", ".join(map(_fmt, v))
    return "" if v is None else str(v)


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(f"<tr class='{(classes or [''] * len(rows))[i]}'>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                   for i, r in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def headline(result: dict) -> tuple[str, str]:
    """(colour, text): red when the share rule says dataset drift; amber when only some feature or a
    multivariate test drifted; green when nothing did."""
    drifted = [f"{n} ({f['test']})" for n, f in sorted(result["features"].items()) if f["drifted"]]
    multi = [m["test"] for m in (result.get("multivariate") or {}).values() if m.get("drifted")]
    rule = (f"{result['drifted_features']} of {result['n_features']} features drifted, share "
            f"{result['drift_share']:.2f} against the rule's {result['threshold_share']}")
    if result["dataset_drift"]:
        color, verdict = "red", "DRIFT: the dataset drifted"
    elif drifted or multi:
        color, verdict = "amber", "Drift in part: no dataset drift by the share rule, but"
    else:
        color, verdict = "green", "No drift found"
    found = "; ".join(x for x in (f"drifted features: {', '.join(drifted)}" if drifted else "",
                                  f"multivariate tests that drifted: {', '.join(multi)}" if multi else "") if x)
    return color, f"{verdict} {('- ' + found) if found else ''} ({rule})"


def render(result: dict, reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], title: str) -> str:
    """A self-contained HTML page for `forge drift --html`."""
    feats = sorted(result["features"].items(), key=lambda kv: (not kv[1]["drifted"], kv[0]))
    color, text = headline(result)
    rows, classes = [], []
    for name, f in feats:
        img = ""
        if name in reference and name in current:
            img = (f"<img alt='{html.escape(name)}: reference vs current' src='data:image/png;base64,"
                   f"{_plot(name, reference[name], current[name], name in numeric)}'>")
        rows.append([html.escape(name), html.escape(f["test"]), _fmt(f["statistic"]), _fmt(f["p_value"]),
                     _fmt(f["threshold"]), "<b>yes</b>" if f["drifted"] else "no", img])
        classes.append("drift" if f["drifted"] else "")
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='headline' style='background:{_COLORS[color]}'>{html.escape(text)}</p>",
             f"<p class='note'>The verdict is the dataset-share rule: dataset drift when at least "
             f"{result['threshold_share']} of the features drift. Reference rows: {result['rows_reference']}, "
             f"current rows: {result['rows_current']}.</p>",
             "<h2>Features</h2>",
             _table(["feature", "test", "statistic", "p-value", "threshold", "drifted", "reference vs current"],
                    rows, classes)]
    multi = result.get("multivariate") or {}
    if multi:
        keys = sorted({k for m in multi.values() for k in m if k != "test"})
        parts += ["<h2>Multivariate</h2>", _table(["test", *keys], [[html.escape(m["test"]),
                                                                      *(html.escape(_fmt(m.get(k))) for k in keys)]
                                                                     for m in multi.values()],
                                                  ["drift" if m.get("drifted") else "" for m in multi.values()])]
    if result.get("performance_estimate"):
        est = result["performance_estimate"]
        parts += ["<h2>Estimated performance (CBPE, no labels)</h2>",
                  _table(["metric", "estimate"], [[html.escape(str(k)), html.escape(_fmt(v))] for k, v in est.items()])]
    return (f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
