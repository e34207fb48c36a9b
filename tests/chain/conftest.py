import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # the tests import their shared helpers (chainlab) by name
    sys.path.insert(0, HERE)
