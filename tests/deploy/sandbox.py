"""A rendered pod template run on this machine as the kubelet would run it, with bubblewrap (Debian's bwrap):

- the root filesystem read-only (readOnlyRootFilesystem: true): the host's /usr and /etc, the repository and its
  venv stand in for the image, bound read-only; nothing else of the host is there;
- each emptyDir a fresh tmpfs at its mountPath;
- the pod's runAsUser and runAsGroup, in a user namespace;
- each Secret volume as the kubelet writes it: files with the volume's defaultMode (or an item's mode), owned
  by root, their group the pod's fsGroup when it has one (Kubernetes docs, "Configure a Security Context for a
  Pod": "the owner for volume /data/demo and any files created in that volume will be Group ID 2000") and root
  otherwise;
- the container's env: its values, its ConfigMap and Secret references resolved from what the caller passes,
  and what KubeRay adds to a Ray container of a cluster with `authOptions.mode: token` (RAY_AUTH_MODE, and
  RAY_AUTH_TOKEN from the cluster's token Secret).

Ownership in the user namespace: bwrap, started by root, maps the pod's UID and GID to root outside. A file
"owned by root, group fsGroup" is therefore made owned by an unmapped UID (nobody inside) and by root's group
(the pod's GID inside); "group root" by an unmapped group. So the container reads a 0440 secret only through
its group, as on a node.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

UNMAPPED = 54321  # an owner with no name inside the sandbox: neither the pod's UID nor its group
REPO = Path(__file__).resolve().parents[2]


def _python_roots() -> list[str]:
    """Where the venv's interpreter really lives (pyenv under /root, /usr/local...): bound read-only too."""
    real = Path(os.path.realpath(REPO / ".venv" / "bin" / "python")).parents[1]
    return [] if str(real).startswith("/usr/") else [str(real)]


def _secret_volume(volume: dict, data: dict[str, str], fs_group: int | None, where: Path) -> Path:
    folder = where / volume["name"]
    folder.mkdir(parents=True)
    spec = volume["secret"]
    items = spec.get("items") or [{"key": k, "path": k} for k in data]
    for item in items:
        path = folder / item["path"]
        path.write_text(data[item["key"]])
        os.chown(path, UNMAPPED, 0 if fs_group is not None else UNMAPPED)
        path.chmod(item.get("mode", spec.get("defaultMode", 0o644)))
    return folder


def env_of(container: dict, config_maps: dict[str, dict], secrets: dict[str, dict], token: str | None) -> dict:
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            env.update(config_maps[ref["configMapRef"]["name"]])
        else:
            env.update(secrets[ref["secretRef"]["name"]])
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[ref["name"]][ref["key"]]
    if token is not None:  # KubeRay's own, for authOptions.mode: token
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    return env


def bwrap_argv(pod: dict, container: dict, secrets: dict[str, dict], env: dict[str, str], where: Path,
               writable: list[Path]) -> list[str]:
    """The bwrap command line that runs `container` of `pod` (then append the command to run)."""
    sc = pod.get("securityContext", {})
    uid, gid, fs_group = sc.get("runAsUser", 1000), sc.get("runAsGroup", 1000), sc.get("fsGroup")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    argv = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-user", "--uid", str(uid),
            "--gid", str(gid), "--unshare-ipc", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
            "--ro-bind", "/etc", "/etc", "--ro-bind", str(REPO), str(REPO), "--proc", "/proc", "--dev", "/dev"]
    for root in _python_roots():
        argv += ["--ro-bind", root, root]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            argv += ["--tmpfs", mount["mountPath"]]
        elif "secret" in volume:
            folder = _secret_volume(volume, secrets[volume["secret"]["secretName"]], fs_group, where)
            argv += ["--ro-bind", str(folder), mount["mountPath"]]
    for path in writable:  # what stands in for the object store and MLflow (outside the pod on a cluster); after
        argv += ["--bind", str(path), str(path)]  # the emptyDirs, so a tmpfs at /tmp does not hide one under it
    argv += ["--remount-ro", "/", "--chdir", str(REPO), "--clearenv"]
    full = {"HOME": "/home/ray", "PATH": f"{REPO}/.venv/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8", **env}
    for key, value in full.items():
        argv += ["--setenv", key, value]
    return argv + ["--"]


def ray_start(group: dict, head_address: str | None, ports: dict[str, int]) -> list[str]:
    """The command KubeRay runs in a Ray container: `ray start` with the group's rayStartParams as --key=value
    and --block (ray-operator/controllers/ray/common/pod.go, generateRayStartCommand). Only the ports are moved,
    to free ones here, since every sandbox shares this machine's network."""
    params = dict(group.get("rayStartParams", {}))
    params.update({k: str(v) for k, v in ports.items()})
    head = ["--head"] if head_address is None else [f"--address={head_address}"]
    return ["ray", "start", *head, "--block", *(f"--{k}={v}" for k, v in sorted(params.items()))]
