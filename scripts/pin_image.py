"""Pin the image an overlay runs: `python scripts/pin_image.py REPOSITORY DIGEST OVERLAY...`.

The deploy workflow runs it for the repository it builds in (`ghcr.io/<owner>/<name>`, whatever the fork is
called) with the digest the registry returned, on the overlay and its one-shot jobs; tests/deploy/test_delivery.py
runs it for a repository of another name and renders the result. Only the `images:` entry for Forge's image is
touched (its newName and digest), the way `kustomize edit set image` would, with no kustomize binary needed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

IMAGE = "ghcr.io/mlops-forge/forge"  # the name every kustomization's images: entry maps


def pin(kustomization: Path, repository: str, digest: str) -> None:
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise SystemExit(f"not an image digest: {digest!r}")
    if not re.fullmatch(r"[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+", repository):
        raise SystemExit(f"not an image repository: {repository!r}")
    doc = yaml.safe_load(kustomization.read_text())
    entries = [e for e in doc.get("images", []) if e.get("name") == IMAGE]
    if len(entries) != 1:
        raise SystemExit(f"{kustomization}: no single images entry named {IMAGE}")
    entries[0].pop("newTag", None)
    entries[0].update(newName=repository, digest=digest)
    kustomization.write_text(yaml.safe_dump(doc, sort_keys=False))


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    repository, digest, *overlays = argv
    for overlay in overlays:
        pin(Path(overlay) / "kustomization.yaml", repository.lower(), digest)
        print(f"{overlay}: {repository.lower()}@{digest}")


if __name__ == "__main__":
    main(sys.argv[1:])
