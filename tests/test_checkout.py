"""What the whole run leaves in the checkout: nothing. Tests write into their temporary folders (screenshots for
the README only through `make screenshots`), never into tracked or trackable files."""

import pytest

from tests import _suite
from tests.conftest import CHECKOUT, ROOT


@pytest.mark.last
def test_the_suite_wrote_nothing_into_the_checkout(request):
    before, after = request.config.stash[CHECKOUT], _suite.checkout_files(ROOT)
    written = sorted(p for p in after if before.get(p) != after[p])
    removed = sorted(set(before) - set(after))
    assert not written and not removed, f"the run wrote {written} and removed {removed} in the checkout"
