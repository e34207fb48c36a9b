import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # the tests import their shared helpers (chainlab) by name
    sys.path.insert(0, HERE)

import pytest  # noqa: E402
from anvil_node import Anvil  # noqa: E402  (found through the path set above)


@pytest.fixture
def anvil():
    """A fresh anvil (automine) for one test, stopped after it."""
    node = Anvil()
    try:
        yield node
    finally:
        node.stop()
