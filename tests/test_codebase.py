"""The shape of forge/ that a newcomer relies on: layering, module and function sizes, module docstrings."""

import ast
from pathlib import Path

FORGE = Path(__file__).resolve().parent.parent / "forge"
# Lower layers never import higher ones (lazy imports inside functions included).
LAYERS = [
    {"forge.errors", "forge._cron", "forge._columns"},
    {"forge.config", "forge.storage", "forge._runtime", "forge.signing"},
    {"forge.workspace"},
    {"forge.data", "forge.features", "forge.training"},
    {"forge.registry"},
    {"forge.serving", "forge.monitoring"},
    {"forge.pipelines"},
    {"forge.api", "forge.cli", "forge"},
]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def _layer(module: str) -> int:
    for rank, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names if n != "forge") or module in names:
            return rank
    raise AssertionError(f"{module}: not in any layer of tests/test_codebase.py")


def _modules():
    for path in sorted(FORGE.rglob("*.py")):
        parts = path.relative_to(FORGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text())


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("forge"):
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("forge"):
                    yield node.lineno, alias.name


def test_no_lower_layer_imports_a_higher_one():
    bad = []
    for name, path, tree in _modules():
        if name == "forge":
            continue  # the package's lazy re-exports of the public API
        for line, target in _imports(tree):
            if target != "forge" and _layer(target) > _layer(name):  # `import forge`: only __version__
                bad.append(f"{path.relative_to(FORGE.parent)}:{line} {name} -> {target}")
    assert not bad, "\n".join(bad)


def test_modules_and_functions_stay_small_and_say_what_they_own():
    problems = []
    for _, path, tree in _modules():
        rel = path.relative_to(FORGE.parent)
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            problems.append(f"{rel}: {lines} lines > {MAX_MODULE_LINES}")
        if not ast.get_docstring(tree):
            problems.append(f"{rel}: no module docstring")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    problems.append(f"{rel}:{node.lineno} {node.name}: {n} lines > {MAX_FUNCTION_LINES}")
    assert not problems, "\n".join(problems)


def test_the_layer_check_can_fail(tmp_path):
    """The check itself: a config module importing the pipelines would be caught."""
    tree = ast.parse("from forge.pipelines.schedule import cron_trigger\n")
    assert [t for _, t in _imports(tree) if _layer(t) > _layer("forge.config")]
