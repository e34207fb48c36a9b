import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
NODE = str(Path(__file__).resolve().parent.parent / "node")  # partitions (TCP proxies between operators)
for folder in (NODE, HERE):
    if folder not in sys.path:  # the tests import their shared helpers (chainlab, polling, partitions) by name
        sys.path.insert(0, folder)

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
