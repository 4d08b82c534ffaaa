"""Process-wide runtime set-up: Ray connection and quiet logging. Called by entrypoints, never at import."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

NOISY = ("ray", "ray.data", "ray.tune", "ray.train", "ray.serve", "mlflow", "alembic", "urllib3", "optuna")


def silent(_: str) -> None:
    """The `say` of a caller that wants no progress lines (the library default)."""


def quiet() -> None:
    """Keep the terminal for Forge's own output; Ray and MLflow log to their files.

    Warnings are not silenced here: `library_output` sends them, with the libraries' chatter, to a log file.
    """
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if os.environ.get("FORGE_VERBOSE") == "1":
        return
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def library_output(path: Path | None):
    """Send what Ray, Tune, Optuna and MLflow print or log (and Python warnings) to `path` while the block runs;
    Forge's own lines go to stderr through their own console and stay on the terminal.

    FORGE_VERBOSE=1 (or path None) leaves everything on the terminal.
    """
    if path is None or os.environ.get("FORGE_VERBOSE") == "1":
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate,
                                                 logging.getLogger(n).level) for n in NOISY})
    root.handlers, root.level = [handler], logging.INFO
    for name in NOISY:  # their own stream handlers write to the terminal: route them through the root instead
        lg = logging.getLogger(name)
        lg.handlers, lg.propagate, lg.level = [], True, logging.INFO
    logging.captureWarnings(True)
    try:
        with open(path, "a", encoding="utf-8") as out, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(out):  # MLflow prints its registry lines to stderr itself
            yield path
    finally:
        logging.captureWarnings(False)
        root.handlers, root.level = saved[0], saved[1]
        for name, (handlers, propagate, level) in saved[2].items():
            lg = logging.getLogger(name)
            lg.handlers, lg.propagate, lg.level = handlers, propagate, level
        handler.close()


FAST_INGRESS = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


def serve_defaults() -> None:
    """Serve's fastest honest set-up on clusters Forge starts itself: HAProxy in front of direct ingress.

    bench/serve measured it at about 3x the default proxy's single-row throughput on 2 cores. Ray reads
    these when its processes start, so this runs before Ray (and before `ray.serve` is imported).
    A cluster Forge connects to (RAY_ADDRESS) keeps its own settings; FORGE_FAST_INGRESS=0 opts out.
    """
    if os.environ.get("RAY_ADDRESS") or os.environ.get("FORGE_FAST_INGRESS") == "0":
        return
    for key, value in FAST_INGRESS.items():
        os.environ.setdefault(key, value)


def publish_address(gcs_address: str) -> None:
    """Record this cluster as the machine's current one, as `ray start` does.

    Code inside the cluster that uses the State API finds the cluster through that file; Ray Train's
    placement-group cleaner is such code. With the file missing or left by an earlier cluster, a TorchTrainer
    trial that Tune stops (ASHA) keeps its worker's CPU reserved for ever and the search hangs on 2 CPUs.
    When this process ends (and its embedded cluster with it), the address it replaced is put back: a
    short `forge` command must not leave a longer-lived cluster on the machine pointing at a dead one.
    """
    import atexit

    from ray._private.utils import read_ray_address, write_ray_address  # no public API writes it

    previous = read_ray_address()
    write_ray_address(gcs_address)
    if previous and previous != gcs_address:
        atexit.register(_give_back_address, gcs_address, previous)


def _give_back_address(ours: str, previous: str) -> None:
    from ray._private.utils import read_ray_address, write_ray_address

    if read_ray_address() == ours:  # nobody has taken it since
        # Ray logs "Overwriting previous Ray address" at INFO; at exit it would be the terminal's last line.
        logging.getLogger("ray._private.utils").setLevel(logging.WARNING)
        write_ray_address(previous)


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Connect to RAY_ADDRESS (or `address`) if given, else start a local Ray.

    Returns:
        The ray module, initialised.
    """
    import ray

    quiet()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        serve_defaults()
    kwargs = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        # "local": always a fresh embedded cluster, never one that `ray start` left behind on this machine.
        info = ray.init(address="local", num_cpus=num_cpus, **kwargs)
        publish_address(info.address_info["gcs_address"])
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return ray
