"""Paths and environments the app's tests share."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "node_modules"


def node_env(**extra: str) -> dict[str, str]:
    return os.environ | {"NODE_PATH": str(NODE_MODULES)} | extra
