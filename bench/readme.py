"""`python -m bench.readme`: bench/out/results.json as the README's Markdown table (printed; paste it in)."""

import json
from pathlib import Path

OUT = Path(__file__).parent / "out" / "results.json"


def main() -> None:
    data = json.loads(OUT.read_text())
    m = data["machine"]
    print(f"Measured at commit {data['commit']} on {m['cpus']} CPUs, {m['memory_gb']} GiB ({data['at']}"
          f"{', --quick' if data['quick'] else ''}); ratios are seconds against the baseline in the same run.\n")
    print("| benchmark | contender | seconds | peak GB | x baseline |")
    print("|---|---|---|---|---|")
    for r in data["results"]:
        peak = "" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 1e9:.2f}"
        print(f"| {r['benchmark']} | {r['contender']} | {r['seconds']} | {peak} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
