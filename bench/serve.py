"""bench/serve: Forge on Ray Serve (auth, validation, metrics, prediction log all on) against bare FastAPI +
uvicorn serving the same model with one worker per core, single-row and 100-row requests, wrk on loopback.

Each Forge configuration runs in a fresh Ray (its env vars must be set before Ray starts).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "serve"
BIN = Path(sys.executable).parent
LUA = """wrk.method = "POST"
wrk.body = io.open("{body}"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
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


def _wait(ready, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not become ready")


def wrk(url: str, body: dict, token: str, seconds: int, connections: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "body.json").write_text(json.dumps(body))
        (Path(d) / "post.lua").write_text(LUA.format(body=Path(d) / "body.json", token=token))
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


def run_forge(cfg_path: Path, env: dict, seconds: int, connections: int) -> dict:
    """Serve Forge in a child process with `env`, measure with wrk, stop it."""
    port = 8123
    script = f"""
import os, time, sys
from forge._runtime import init_ray
from forge.config import load_config
from forge.serving.deploy import start
cfg = load_config({str(cfg_path)!r})
cfg.serving.port = {port}
cfg.serving.autoscaling.min_replicas = cfg.serving.autoscaling.max_replicas = int(os.environ.get("BENCH_REPLICAS", "1"))
cfg.serving.replica_cpus = 0
init_ray()
start(cfg, say=lambda m: print(m, flush=True))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200, 180)
        return measure(url, cfg_path, seconds, connections)
    finally:
        os.killpg(proc.pid, 15)  # the child's own Ray goes with its process group
        proc.wait(60)


def token(cfg_path: Path) -> str:
    from forge.config import load_config
    from forge.serving.auth import Settings, create_token

    return create_token(Settings.from_config(load_config(cfg_path).serving.auth), "bench", ["predict"], 36000)


def measure(url: str, cfg_path: Path, seconds: int, connections: int) -> dict:
    out = {}
    tok = token(cfg_path)
    for name, body in bodies(None).items():
        httpx.post(f"{url}/v1/predict", json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=30)
        out[name] = wrk(f"{url}/v1/predict", body, tok, seconds, connections)
    return out


def run_bare(cfg_path: Path, seconds: int, connections: int) -> dict:
    from forge.config import load_config
    from forge.workspace import tracking_uri

    port = 8124
    env = {**os.environ, "BENCH_TRACKING_URI": tracking_uri(load_config(cfg_path)),
           "BENCH_MODEL_URI": "models:/wide@champion", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([str(BIN / "uvicorn"), "bench.bare_app:app", "--port", str(port), "--workers",
                             str(os.cpu_count() or 2), "--log-level", "warning"], env=env, cwd=ROOT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.post(f"{url}/v1/predict", json=bodies(None)["1 row"], timeout=5).status_code == 200, 60)
        return measure(url, cfg_path, seconds, connections)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def main(seconds: int = 10, connections: int = 16) -> dict:
    os.environ.setdefault("FORGE_JWT_SECRET", "bench-secret-" + "z" * 24)
    cfg_path = train()
    results = {"bare FastAPI+uvicorn (2 workers)": run_bare(cfg_path, seconds, connections)}
    configs = {
        "forge, Serve proxy (default)": {},
        "forge, HAProxy + throughput-optimized": {"RAY_SERVE_ENABLE_HA_PROXY": "1",
                                                  "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    }
    for name, env in configs.items():
        results[name] = run_forge(cfg_path, env, seconds, connections)
    base = results["bare FastAPI+uvicorn (2 workers)"]
    print(f"\n== bench/serve: wrk -t2 -c{connections} -d{seconds}s on loopback; ratios against bare FastAPI ==")
    for size in ("1 row", "100 rows"):
        for name, r in results.items():
            x = r[size]
            print(f"  {size:<9} {name:<40} {x['rps']:>8.0f} req/s  x{x['rps'] / base[size]['rps']:4.2f}  "
                  f"p50 {x['p50_ms']:6.1f} ms  p99 {x['p99_ms']:6.1f} ms  non-2xx {x['non_2xx']}")
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
