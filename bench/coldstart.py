"""bench/coldstart: `forge serve` from process start to the first 200 on /v1/predict, against the bare FastAPI +
uvicorn app (bench/bare_app.py, the same champion) from process start to its first 200, and against the floor
that any Ray Serve app pays here: Ray and Serve started the same way, serving an empty route
(bench/serve_floor.py). Then `forge serve` onto a running cluster (`ray start --head`, its start timed apart),
as on a RayCluster: the first app, and an app deployed again with Serve already up.

Forge's phases come from the line `forge serve` prints when it is up ("ready in ...: python start and imports,
app build (the deployment declared; each replica builds its own routes), cluster start, replicas (start and
model load)"). That line comes when `serve.run` returns, which can be a moment after the first 200 (the
controller polls the replicas).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench._util import record
from bench.serve import BIN, ROOT, bodies, stop, token, train, wait_until
from forge._runtime import FAST_INGRESS
from forge.serving.ports import free_ports, haproxy_ports

PHASES = re.compile(r"ready in ([\d.]+) s: imports ([\d.]+) s, app build ([\d.]+) s, cluster ([\d.]+) s, "
                    r"replicas ([\d.]+) s")


def _first_200(url: str, body: dict, headers: dict, proc: subprocess.Popen, timeout: float) -> float:
    """Poll every 50 ms while the port refuses or the route is missing; a request the server has taken is waited
    for, as curl waits. A client that gives up on it is not only impatient: in Ray 2.60's HAProxy mode (`option
    abortonclose`, HAProxy 2.8.25) a request abandoned while Serve's fallback proxy holds it for a starting
    replica sets one HAProxy thread spinning (epoll_wait with a zero timeout, 14M context switches in 6 s, `show
    activity`) until that proxy answers. With a 2 s client timeout it burned 4-14 CPU-s of a cold start here, and
    without `abortonclose` in Serve's template it did not."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before answering")
        try:
            if httpx.post(url, json=body, headers=headers, timeout=max(deadline - time.time(), 1)).status_code == 200:
                return time.perf_counter()
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no 200 from {url} within {timeout} s")


def forge_once(cfg_path: Path, port: int, cluster: dict | None = None) -> dict:
    """One `forge serve`, timed to the first 200 on /v1/predict: cold (its own Ray), or with `cluster`'s
    environment (RAY_ADDRESS and its auth mode) onto a running one."""
    import threading

    tok = token(cfg_path)
    env = {**os.environ, "FORGE_SERVING__PORT": str(port), "RAY_ADDRESS": "", **(cluster or {})}
    lines: list[str] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "forge"), "serve", "-c", str(cfg_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        t1 = _first_200(f"http://127.0.0.1:{port}/v1/predict", bodies(None)["1 row"],
                        {"Authorization": f"Bearer {tok}"}, proc, 300)
        # The app can answer before `serve.run` returns (the controller sees it running a moment later), and
        # the phase line comes after that.
        deadline = time.time() + 60
        while not any(PHASES.search(x) for x in lines) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
    finally:
        stop(proc)
        reader.join(10)
    m = next((m for m in map(PHASES.search, lines) if m), None)
    if not m:
        raise RuntimeError("no phase line in forge serve's output:\n" + "".join(lines)[-2000:])
    total, imports, build, cluster, replicas = (float(x) for x in m.groups())
    return {"wall_s": round(t1 - t0, 2), "imports_s": imports, "app_build_s": build, "cluster_s": cluster,
            "replicas_s": replicas, "ready_line_s": total}


def bare_once(cfg_path: Path, port: int) -> dict:
    from forge.config import load_config
    from forge.workspace import tracking_uri

    env = {**os.environ, "BENCH_TRACKING_URI": tracking_uri(load_config(cfg_path)), "BENCH_MODEL_NAME": "wide",
           "BENCH_MODEL_VERSION": "champion", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "uvicorn"), "bench.bare_app:app", "--port", str(port), "--workers",
                             str(os.cpu_count() or 2), "--log-level", "warning"], env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        t1 = _first_200(f"http://127.0.0.1:{port}/v1/predict", bodies(None)["1 row"], {}, proc, 120)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    return {"wall_s": round(t1 - t0, 2)}


def floor_once(port: int) -> dict:
    """Ray + Serve with an empty route (bench/serve_floor.py), started as forge serve starts them."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bench.serve_floor", str(port)], cwd=ROOT,
                            env={**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t1 = _first_200(f"http://127.0.0.1:{port}/v1/predict", {}, {}, proc, 300)
    finally:
        stop(proc)
    return {"wall_s": round(t1 - t0, 2)}


def attached_once(cfg_path: Path, port: int) -> dict[str, dict]:
    """`forge serve` onto a running cluster, as on a RayCluster or after `ray start --head`: the head's start is
    timed apart, then the first app (Serve's controller and proxies start with it) and an app deployed again
    with Serve already up (the replica alone: the start a swap or an autoscaled replica pays)."""
    cluster = {**FAST_INGRESS, "RAY_AUTH_MODE": "token"}  # as `forge serve` and the manifests set them
    head = ["--port", "6391", "--dashboard-port", "8276", "--num-cpus", str(os.cpu_count() or 2)]
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "ray"), "start", "--head", "--disable-usage-stats", *head],
                   env={**os.environ, **cluster}, check=True, capture_output=True)
    started = round(time.perf_counter() - t0, 2)
    cluster["RAY_ADDRESS"] = "127.0.0.1:6391"
    try:
        wait_until(lambda: httpx.get("http://127.0.0.1:8276/api/version", timeout=2).status_code < 500, 120)
        time.sleep(3)  # the dashboard answers before its module processes have finished starting
        first = forge_once(cfg_path, port, cluster)
        again = forge_once(cfg_path, port, cluster)
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True)
        free_ports({"serving": port, **haproxy_ports()}, print)  # HAProxy outlives `ray stop`
    return {"first": {**first, "ray_start_s": started}, "again": again}


def main(runs: int = 2) -> dict:
    cfg_path = train()
    bare, forge = "bare FastAPI+uvicorn (2 workers)", "forge serve (its own Ray)"
    floor = "Ray + Serve, an empty route (the floor)"
    results = {bare: [bare_once(cfg_path, 8140 + i) for i in range(runs)],
               floor: [floor_once(8145 + i) for i in range(runs)],
               forge: [forge_once(cfg_path, 8150 + i) for i in range(runs)]}
    attached = [attached_once(cfg_path, 8155 + i) for i in range(runs)]
    results["forge serve onto a running cluster (first app)"] = [a["first"] for a in attached]
    results["forge serve onto a running cluster (Serve up)"] = [a["again"] for a in attached]
    base = min(r["wall_s"] for r in results[bare])
    print(f"\n== bench/coldstart: process start to the first 200 on /v1/predict (best of {runs}; "
          f"ratios against {bare}) ==")
    for name, runs_ in results.items():
        best = min(runs_, key=lambda r: r["wall_s"])
        extra = {k: v for k, v in best.items() if k != "wall_s"}
        print(f"  {name:<48} {best['wall_s']:>7.2f} s  x{best['wall_s'] / base:5.2f}  {extra or ''}")
        record("bench/coldstart: process start to first 200", name, best["wall_s"], None, best["wall_s"] / base,
               bare, **extra)
    return results


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
