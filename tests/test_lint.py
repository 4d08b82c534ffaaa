"""`make lint`'s security and typing checks, run by `make test` too so CI holds them: bandit over forge/ (no
medium or high finding without a `# nosec` that says why) and mypy over the public API."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_bandit_finds_nothing_medium_or_high():
    r = subprocess.run([str(BIN / "bandit"), "-q", "-c", "pyproject.toml", "-r", "forge", "--severity-level", "medium"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_every_nosec_says_why():
    bare = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "forge").rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if "# nosec" in line and ":" not in line.split("# nosec", 1)[1]]
    assert not bare, f"a `# nosec` without its reason: {bare}"


def test_mypy_on_the_public_api():
    r = subprocess.run([str(BIN / "mypy")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
