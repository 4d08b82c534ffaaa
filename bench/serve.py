"""bench/serve: Forge on Ray Serve (auth, validation, metrics, prediction log all on) against bare FastAPI +
uvicorn serving the same model, one worker per core against one replica per core (BENCH_REPLICAS), single-row and
100-row requests, wrk on loopback.

Each Forge configuration runs in a fresh Ray (its env vars must be set before Ray starts).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench._util import record

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "serve"
BIN = Path(sys.executable).parent
LUA = """wrk.method = "POST"
wrk.body = io.open("{body}"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local pause = {pause}
function delay() return pause end
"""


def train() -> Path:
    """A 20-feature logistic regression, through the real pipeline."""
    from forge.config import load_config
    from forge.data import synthetic

    OUT.mkdir(parents=True, exist_ok=True)
    cfg_path = OUT / "forge.yaml"
    if not (OUT / ".forge").exists():
        synthetic.wide(5000, 20, seed=0).to_csv(OUT / "wide.csv", index=False)
        cfg_path.write_text("name: wide\ndata:\n  source: wide.csv\n  target: target\n"
                            "training:\n  num_samples: 1\n  models: [logistic_regression]\n")
        from forge._runtime import init_ray
        from forge.pipelines.pipeline import run

        init_ray()
        run(load_config(cfg_path))
        import ray

        ray.shutdown()
    return cfg_path


def wait_until(ready, timeout: float) -> None:
    """Poll `ready()` every 0.5 s (a refused connection counts as not yet) until it is true; raise after `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not become ready")


def wrk(url: str, body: dict, token: str, seconds: int, connections: int, rate: float | None = None) -> dict:
    """Closed loop (as fast as it answers), or bounded near `rate` req/s: each connection pauses between requests.

    For a bounded run a 3 s probe measures the response time first, so pause + response time gives the rate.
    """
    pause = 0
    if rate:
        guess = int(1000 * connections / rate)
        probe = _wrk(url, body, token, 3, connections, guess)
        response_ms = max(1000 * connections / max(probe["rps"], 1e-9) - guess, 0)
        pause = max(int(1000 * connections / rate - response_ms), 0)
    return _wrk(url, body, token, seconds, connections, pause)


def _wrk(url: str, body: dict, token: str, seconds: int, connections: int, pause: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "body.json").write_text(json.dumps(body))
        (Path(d) / "post.lua").write_text(LUA.format(body=Path(d) / "body.json", token=token, pause=pause))
        r = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
                            str(Path(d) / "post.lua"), url], capture_output=True, text=True, timeout=seconds + 60)
    text = r.stdout

    def ms(label: str) -> float:
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", text)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rps": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%"), "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def bodies(cfg) -> dict:
    from forge.data import synthetic

    df = synthetic.wide(100, 20, seed=1).drop(columns=["target"])
    rows = json.loads(df.to_json(orient="records"))
    return {"1 row": {"instances": rows[:1]}, "100 rows": {"instances": rows}}


def run_forge(cfg_path: Path, env: dict, seconds: int, connections: int, port: int,
              bounded: float | None = None) -> dict:
    """Serve Forge in a child process with `env`, measure with wrk, stop it (and its own Ray) before returning."""
    script = f"""
import os, time, sys
from forge._runtime import init_ray
from forge.config import load_config
from forge.serving.deploy import start
cfg = load_config({str(cfg_path)!r})
cfg.serving.port = {port}
cfg.serving.autoscaling.min_replicas = cfg.serving.autoscaling.max_replicas = int(os.environ["BENCH_REPLICAS"])
cfg.serving.replica_cpus = 0
init_ray()
start(cfg, say=lambda m: print(m, flush=True))
import ray
ray.shutdown()
"""
    # Replicas = cores, as the bare app gets a uvicorn worker per core (BENCH_REPLICAS overrides).
    env = {"BENCH_REPLICAS": os.environ.get("BENCH_REPLICAS", str(os.cpu_count() or 2)), **env}
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200, 180)
        return measure(url, cfg_path, seconds, connections, bounded)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C: the app drains, the script ends and its embedded Ray shuts down with it (the raylet and workers
    are not in the child's process group, so a plain kill would leave them serving)."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def token(cfg_path: Path) -> str:
    from forge.config import load_config
    from forge.serving.auth import Settings, create_token

    return create_token(Settings.from_config(load_config(cfg_path).serving.auth), "bench", ["predict"], 36000)


def measure(url: str, cfg_path: Path, seconds: int, connections: int, bounded: float | None = None) -> dict:
    """Saturating runs per body size, plus (with `bounded`) single rows at that many req/s."""
    out = {}
    tok = token(cfg_path)
    for name, body in bodies(None).items():
        httpx.post(f"{url}/v1/predict", json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=30)
        out[name] = wrk(f"{url}/v1/predict", body, tok, seconds, connections)
    if bounded:
        out["1 row, bounded"] = wrk(f"{url}/v1/predict", bodies(None)["1 row"], tok, seconds, 8, rate=bounded)
    return out


def run_bare(cfg_path: Path, seconds: int, connections: int, bounded: float | None = None) -> dict:
    from forge.config import load_config
    from forge.workspace import tracking_uri

    port = 8124
    env = {**os.environ, "BENCH_TRACKING_URI": tracking_uri(load_config(cfg_path)),
           "BENCH_MODEL_NAME": "wide", "BENCH_MODEL_VERSION": "champion", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([str(BIN / "uvicorn"), "bench.bare_app:app", "--port", str(port), "--workers",
                             str(os.cpu_count() or 2), "--log-level", "warning"], env=env, cwd=ROOT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.post(f"{url}/v1/predict", json=bodies(None)["1 row"], timeout=5).status_code == 200, 60)
        return measure(url, cfg_path, seconds, connections, bounded)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def _best(runs: list[dict]) -> dict:
    """Per body size, the run with the most req/s, with every run's rate kept beside it."""
    return {size: {**max((r[size] for r in runs), key=lambda x: x["rps"]), "rps_runs": [round(r[size]["rps"])
                                                                                        for r in runs]}
            for size in runs[0]}


def main(seconds: int = 10, connections: int = 16, rounds: int = 2) -> dict:
    """Bare and Forge take turns, `rounds` times, each best-of its rounds (timeit's rule, for both alike).

    This machine's speed moves by 2-3x from one minute to the next (another tenant): one window each let a slow
    minute decide the ratio either way (bare at 210 req/s in one full run against 667-796 in the day's others).
    The bounded runs come in the last round, paced at half the best bare single-row rate seen so far.
    """
    os.environ.setdefault("FORGE_JWT_SECRET", secrets.token_hex(32))
    cfg_path = train()
    bare, forge = "bare FastAPI+uvicorn (2 workers)", "forge default: HAProxy + direct ingress"
    opt_out = "forge, Serve's own proxy (opt-out)"
    envs = {forge: {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
            opt_out: {"FORGE_FAST_INGRESS": "0", "RAY_SERVE_ENABLE_HA_PROXY": "0",
                      "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"}}
    runs: dict[str, list[dict]] = {bare: [], forge: []}
    target = None
    for i in range(rounds):
        last = i == rounds - 1
        runs[bare].append(run_bare(cfg_path, seconds, connections))
        target = max(r["1 row"]["rps"] for r in runs[bare]) / 2  # the bar: half the bare app's rate
        if last:
            runs[bare][-1]["1 row, bounded"] = run_bare(cfg_path, seconds, connections, target)["1 row, bounded"]
        runs[forge].append(run_forge(cfg_path, envs[forge], seconds, connections, 8130 + i,
                                     bounded=target if last else None))
    # Serve's own proxy is the opt-out, shown for scale: one round.
    runs[opt_out] = [run_forge(cfg_path, envs[opt_out], seconds, connections, 8139, bounded=target)]
    results = {name: _best(r) for name, r in runs.items()}
    for name in (bare, forge):  # bounded ran once, in the last round
        results[name]["1 row, bounded"] = runs[name][-1]["1 row, bounded"]
    report(results, bare, seconds, connections, rounds, target)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    return results


def report(results: dict, bare: str, seconds: int, connections: int, rounds: int, target: float) -> None:
    base = results[bare]
    print(f"\n== bench/serve: wrk -t2 -c{connections} -d{seconds}s on loopback, best of {rounds} alternating rounds "
          "(opt-out: one); ratios against bare FastAPI ==")
    print(f"   (bounded: 8 connections pacing single rows at about {target:.0f} req/s, half the bare app's rate)")
    for size in ("1 row", "100 rows", "1 row, bounded"):
        for name, r in results.items():
            x = r[size]
            each = f"  runs {x['rps_runs']}" if "rps_runs" in x else ""
            print(f"  {size:<15} {name:<40} {x['rps']:>8.0f} req/s  x{x['rps'] / base[size]['rps']:4.2f}  "
                  f"p50 {x['p50_ms']:6.1f} ms  p99 {x['p99_ms']:6.1f} ms  non-2xx {x['non_2xx']}{each}")
            record(f"bench/serve: {size}", name, seconds, None, base[size]["rps"] / x["rps"] if x["rps"] else
                   float("nan"), bare, rps=round(x["rps"]), p99_ms=x["p99_ms"], non_2xx=x["non_2xx"],
                   **({"rps_runs": x["rps_runs"]} if "rps_runs" in x else {}))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
