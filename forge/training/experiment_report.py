"""The HTML report of one Tune search: trials, learning curves, parameters against the metric, links to MLflow.

Self-contained (plots inlined as PNG, no script), so it opens from disk, from an MLflow artifact or a CI upload.
"""

from __future__ import annotations

import base64
import html
import io

from forge.training.experiments import Search, Trial, higher_is_better

_CSS = """body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px;max-width:100%} td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left;overflow-wrap:break-word} table.trials td:not(:nth-child(3)){white-space:nowrap}
tr.win{background:#e8f6ec} tr.stopped{color:#7a5a00}
tr.errored{background:#fdecea} img{max-width:100%;height:auto} .note{color:#555}"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return f"<img alt='plot' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"


def _curves(search: Search) -> str:
    """val_metric per epoch, one line per trial; a trial ASHA stopped ends in an x where it was cut."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=90)
    for t in search.trials:
        if not t.curve:
            continue
        stopped = t.status.startswith("stopped")
        ax.plot(range(1, len(t.curve) + 1), t.curve, marker="o", ms=3, ls="--" if stopped else "-",
                label=f"{t.family} {t.run_id[:6]}")
        if stopped:
            ax.plot([len(t.curve)], [t.curve[-1]], marker="x", ms=10, mew=2, color="#c0392b")
    # Epochs are whole numbers: a search of one-epoch families would otherwise get ticks at 0.96 ... 1.04.
    epochs = max([len(t.curve) for t in search.trials] + [1])
    ax.set_xlim(0.5, epochs + 0.5)
    if epochs <= 20:
        ax.set_xticks(range(1, epochs + 1))
    else:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch (reported iteration)")
    ax.set_ylabel(f"validation {search.metric or 'metric'}")
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)


def _params(search: Search) -> str:
    """Each family's numeric parameters against the validation metric."""
    import matplotlib.pyplot as plt

    out = []
    for family in sorted({t.family for t in search.trials}):
        trials = [t for t in search.trials if t.family == family and t.val_metric is not None]
        names = sorted({k for t in trials for k, v in t.params.items() if _number(v) is not None})
        if not trials or not names:
            continue
        fig, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 2.6), dpi=90, squeeze=False)
        for ax, name in zip(axes[0], names):
            pts = [(_number(t.params.get(name)), t.val_metric) for t in trials if _number(t.params.get(name)) is not None]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts])
            ax.set_xlabel(name, fontsize=8)
        axes[0][0].set_ylabel(search.metric or "metric", fontsize=8)
        fig.suptitle(family, fontsize=10)
        out.append(_png(fig))
    return "".join(out) or "<p class='note'>No numeric parameters to show.</p>"


def _number(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _short(v: str) -> str:
    x = _number(v)
    return v if x is None or float(x).is_integer() else f"{x:.4g}"


def _link(t: Trial, base: str | None) -> str:
    return f"<a href='{html.escape(base + t.run_id)}'>{t.run_id[:8]}</a>" if base else t.run_id[:8]


def render(search: Search, mlflow_runs_url: str | None = None) -> str:
    """The page; `mlflow_runs_url` ends where a run id completes a link to the MLflow UI (None: ids only)."""
    high = higher_is_better(search.metric)
    best = search.best_per_family(high)
    winner = max(best.values(), key=lambda t: t.val_metric if high else -t.val_metric, default=None)
    rows = []
    for t in search.trials:
        cls = "win" if winner is not None and t.run_id == winner.run_id else \
            "stopped" if t.status.startswith("stopped") else "errored" if t.status == "errored" else ""
        params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(t.params.items()))
        metric = "" if t.val_metric is None else f"{t.val_metric:.4f}"
        wall = "" if t.wall_s is None else f"{t.wall_s:.1f}"
        rows.append(f"<tr class='{cls}'><td>{_link(t, mlflow_runs_url)}</td><td>{html.escape(t.family)}</td>"
                    f"<td>{html.escape(params)}</td><td>{html.escape(t.status)}</td><td>{t.iterations}</td>"
                    f"<td>{wall}</td><td>{metric}</td></tr>")
    fam = "".join(f"<tr><td>{html.escape(f)}</td><td>{t.val_metric:.4f}</td><td>{_link(t, mlflow_runs_url)}</td></tr>"
                  for f, t in sorted(best.items()))
    head = (f"Winner: {html.escape(winner.family)} (validation {html.escape(search.metric or 'metric')} "
            f"{winner.val_metric:.4f})" if winner else "No trial finished")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Search {html.escape(search.name)}</title>
<style>{_CSS}</style></head><body><h1>Search {html.escape(search.name)}</h1>
<p><b>{head}</b>; {search.n_trials} trials, started {html.escape(search.started)}; MLflow run
{_link(Trial(search.run_id, '', '', {}, '', 0, None, None), mlflow_runs_url)}.</p>
<h2>Trials</h2><table class="trials"><tr><th>run</th><th>family</th><th>parameters</th><th>status</th><th>iterations</th>
<th>wall s</th><th>validation {html.escape(search.metric or '')}</th></tr>{''.join(rows)}</table>
<h2>Best per family</h2><table><tr><th>family</th><th>validation</th><th>run</th></tr>{fam}</table>
<h2>Learning curves</h2>{_curves(search)}<h2>Parameters against the metric</h2>{_params(search)}</body></html>"""


def write_report(cfg, search: Search, out) -> str:
    """Write the page to `out` and log it as an artifact of the search's MLflow run (reports/); returns the path."""
    from pathlib import Path

    from forge.training import tracking
    from forge.workspace import tracking_uri

    client = tracking.client(cfg)
    uri = tracking_uri(cfg)
    exp = client.get_run(search.run_id).info.experiment_id
    base = f"{uri.rstrip('/')}/#/experiments/{exp}/runs/" if uri.startswith(("http://", "https://")) else None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(search, base))
    client.log_artifact(search.run_id, str(out), "reports")
    return str(out)
