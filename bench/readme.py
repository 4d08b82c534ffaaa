"""`python -m bench.readme [--write]`: bench/out/results.json as the README's Markdown table.

Printed, or with --write put into README.md between the `<!-- bench:start -->` and `<!-- bench:end -->` markers,
so the README's figures are the last run's and nothing else.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).parent / "out" / "results.json"
README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
SKIP = {"benchmark", "contender", "seconds", "peak_bytes", "ratio", "baseline"}


def _extra(r: dict) -> str:
    """What a row carries beside time and memory (req/s and p99 for serving, ray.init, phases, verdicts)."""
    return ", ".join(f"{k} {v}" for k, v in r.items() if k not in SKIP and v is not None)


def render(data: dict) -> str:
    m = data["machine"]
    lines = [f"Measured at commit `{data['commit']}` on {m['cpus']} CPUs, {m['memory_gb']} GiB ({data['at']}"
             f"{', --quick sizes' if data['quick'] else ''}). `x baseline` is the contender's seconds over the "
             "baseline's, measured in the same run (for serving: the baseline's req/s over the contender's, so "
             "below 1 is faster there too); peak memory is the process tree's PSS above its start.", "",
             "| benchmark | contender | seconds | peak GB | x baseline | also |", "|---|---|---|---|---|---|"]
    for r in data["results"]:
        peak = "" if not r["peak_bytes"] else f"{r['peak_bytes'] / 1e9:.2f}"
        who = f"**{r['contender']}**" if r["contender"] == r["baseline"] else r["contender"]
        lines.append(f"| {r['benchmark'].removeprefix('bench/')} | {who} | {r['seconds']} | {peak} | "
                     f"{r['ratio']:.2f} | {_extra(r)} |")
    return "\n".join(lines)


def write(table: str, readme: Path = README) -> None:
    text = readme.read_text()
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{readme}: no {START} ... {END} block to fill")
    readme.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main() -> None:
    table = render(json.loads(OUT.read_text()))
    if "--write" in sys.argv[1:]:
        write(table)
        print(f"bench: {README} updated from {OUT}")
    else:
        print(table)


if __name__ == "__main__":
    main()
