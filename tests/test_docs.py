"""The README and docs/ say only what is true of this checkout: every path they name exists, every `forge` command
and flag they show is one the CLI has, and metric names are written as Prometheus shows them (`ray_forge_*`;
tests/monitoring/test_prometheus.py holds each against a real scrape)."""

import re

import pytest
import typer.main

from forge.cli import app
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("forge/", "tests/", "kuberay/", "grafana/", "bench/", "examples/", "scripts/", "jobs/", "serve_apps/",
       "docs/", "alertmanager/", ".github/", ".ci/")
FILES = ("Makefile", "Dockerfile", "constraints.txt", "constraints-tools.txt", "pyproject.toml")


def _code(text: str) -> list[str]:
    """Inline code spans and the lines of fenced blocks."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    rest = re.sub(r"```.*?```", "", text, flags=re.S)
    return [line for b in blocks for line in b.splitlines()] + re.findall(r"`([^`\n]+)`", rest)


def paths_named(text: str) -> set[str]:
    """Repository paths the text names in code or links (not workspace paths, globs or placeholders)."""
    found = set(re.findall(r"\]\(([^)#\s]+)\)", text))
    for span in _code(text):
        for word in re.split(r"[\s=:,;()'\"]+", span):
            word = word.rstrip(".")
            if word.startswith(TOP) or word in FILES:
                found.add(word)
    return {p for p in found if not re.search(r"[<>*{}$]|://", p) and not p.startswith(("#", "mailto:"))}


def forge_calls(text: str) -> list[list[str]]:
    """Each `forge ...` invocation the text shows, as words (up to a pipe, redirect or comment)."""
    calls = []
    for span in _code(text):
        # at the start, after a shell's `$(`, `&&`, `;`, `|` or `--`, or as .venv/bin/forge: not `from forge import`
        for m in re.finditer(r"(?:^\s*|\$\(|&&\s*|;\s*|\|\s*|--\s+|bin/)forge((?: [^|>#;&)`]*)?)", span):
            words = m.group(1).split()
            # not a command: a placeholder, or a line of output ("forge up: the local stack ...")
            if words and not words[0].startswith(("<", "(")) and not words[0].endswith(":"):
                calls.append(words)
    return calls


def unknown_in(words: list[str], root) -> str | None:
    """What of a `forge` invocation the CLI does not have: a command, or a flag of that command."""
    cmd, i = root, 0
    while hasattr(cmd, "commands") and i < len(words) and not words[i].startswith("-"):
        if words[i] not in cmd.commands:
            return f"forge {' '.join(words[:i + 1])}: no such command"
        cmd, i = cmd.commands[words[i]], i + 1
    if hasattr(cmd, "commands"):
        return None if i == len(words) else f"forge {' '.join(words)}: a group, not a command"
    flags = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])} | {"--help"}
    for w in words[i:]:
        flag = w.split("=", 1)[0]
        if flag.startswith("--") and flag not in flags:
            return f"forge {' '.join(words)}: {flag} is not an option of `{cmd.name}`"
    return None


def bare_metrics(text: str) -> set[str]:
    """Forge's serving metrics written without Ray's prefix (Prometheus shows them as ray_forge_*); the batch jobs'
    forge_job_* go to the Pushgateway as they are."""
    return {m for m in re.findall(r"(?<![a-z_])forge_[a-z_]+", text)
            if not m.startswith("forge_job_") and m not in ("forge_model",)}


def _exists(path: str, doc) -> bool:
    """In the checkout (a module may be named without its .py), or one that runs make (.gitignore'd: a workspace,
    bench/out/)."""
    import subprocess

    if any((base / p).exists() for base in (ROOT, doc.parent) for p in (path, f"{path}.py")):
        return True
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_a_doc_names_exists(doc):
    missing = sorted(p for p in paths_named(doc.read_text()) if not _exists(p, doc))
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_forge_command_and_flag_a_doc_shows_exists(doc):
    root = typer.main.get_command(app)
    wrong = [why for words in forge_calls(doc.read_text()) if (why := unknown_in(words, root))]
    assert not wrong, f"{doc.name}: {wrong}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_metric_names_are_written_as_prometheus_shows_them(doc):
    bare = bare_metrics(doc.read_text())
    assert not bare, f"{doc.name} writes {sorted(bare)}: Prometheus shows them as ray_<name>"


def test_the_checks_can_fail():
    """Each check on a text made to be wrong."""
    text = ("see `forge/nope.py` and [x](docs/nope.md)\n```bash\nforge run --nope\nforge bogus\n```\n"
            "`forge_predictions_total`")
    assert {"forge/nope.py", "docs/nope.md"} <= paths_named(text)
    root = typer.main.get_command(app)
    why = [unknown_in(w, root) for w in forge_calls(text)]
    assert any("--nope" in (w or "") for w in why) and any("bogus" in (w or "") for w in why), why
    assert bare_metrics(text) == {"forge_predictions_total"}
    assert unknown_in(["run", "--json"], root) is None and unknown_in(["models", "show"], root) is None
