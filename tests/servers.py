"""Real servers for the cluster-mode tests: a throwaway PostgreSQL and `mlflow server` on it, proxying S3.

PostgreSQL refuses to run as root, so as root (CI) it runs as the `postgres` user through runuser; its data
folder and socket live in a temporary folder that user owns. Everything listens on loopback ports only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port, require_binary, wait_ready


@dataclass
class Postgres:
    url: str
    folder: Path
    pg_ctl: str
    as_user: list[str]

    def stop(self) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.folder / "data"), "-m", "fast", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1]) if found else require_binary(name)


def start_postgres() -> Postgres:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="forge-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, initdb, "-D", str(folder / "data"), "-U", "forge", "--auth=trust"], check=True,
                   capture_output=True, timeout=120)
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, pg_ctl, "-D", str(folder / "data"), "-o", opts, "-l", str(folder / "log"), "-w",
                    "start"], check=True, capture_output=True, timeout=120)
    return Postgres(f"postgresql://forge@127.0.0.1:{port}/postgres", folder, pg_ctl, as_user)


@dataclass
class MlflowServer:
    url: str
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_mlflow(backend: str, artifacts: str, s3_endpoint: str, env: dict, app_name: str | None = None) -> MlflowServer:
    """`mlflow server` on a PostgreSQL backend, proxying artifacts to S3 (clients need no S3 credentials), with
    the Host-header check on and the names clients use allowed; `app_name="basic-auth"` for MLflow's auth app
    (its settings in `env`, as kuberay/base/mlflow.yaml passes them)."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="forge-mlflow-")) / "server.log"
    mlflow = str(Path(sys.executable).parent / "mlflow")
    cmd = [mlflow, "server", "--backend-store-uri", backend, "--artifacts-destination", artifacts,
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}", *(["--app-name", app_name] if app_name else [])]
    proc = subprocess.Popen(cmd, env={**os.environ, **env, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint},
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if wait_ready(f"{url}/health", 2):
            return MlflowServer(url, proc, log)
    raise RuntimeError(f"mlflow server did not start: {log.read_text()[-3000:]}")
