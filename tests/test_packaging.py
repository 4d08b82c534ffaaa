"""constraints.txt and the Makefile: pins a machine that knows only PyPI can resolve, and `make demo` installing no
system package. (`make check-pins` resolves the pins against PyPI itself; it needs the network, so it is not here.)"""

import re
import tomllib

from tests.conftest import ROOT


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split(";")[0].strip().split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_no_pin_has_a_local_version_label():
    """A version like 2.13.0+cpu exists only on the PyTorch index or a local wheel folder: pip on a machine that
    knows only PyPI cannot resolve it."""
    local = {n: v for n, v in _pins().items() if "+" in v}
    assert not local, f"pins PyPI does not have: {local}"


def test_every_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0]).lower() for d in wanted}
    missing = sorted(names - set(_pins()))
    assert not missing, f"unpinned in constraints.txt: {missing}"


def test_make_demo_installs_the_package_and_no_system_package():
    text = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo: (.*)$", text, re.M).group(1).split()
    assert demo == ["install"], demo
    install = re.search(r"^\$\(RUN_STAMP\):.*?(?=^\S)", text, re.M | re.S).group(0)
    assert "sysdeps" not in install and "apt-get" not in install and "-e ." in install, install
    for target in ("test", "up", "lint"):  # the targets that need system packages, checkov or kubectl get them
        assert re.search(rf"^{target}: ", text, re.M), target
    assert "scripts/sysdeps.sh stack" in text and "scripts/sysdeps.sh test" in text
