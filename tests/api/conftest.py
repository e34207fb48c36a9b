import sys
from pathlib import Path

# the node tests' doubles (InMemorySequencer, RecordingEngine) are shared with the API tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "node"))
