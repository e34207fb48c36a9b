"""Start anvil (installed from npm by `make install`) on 127.0.0.1 with an ephemeral port, for the tests: the
devnet's own `AnvilProcess`, failing the test (not skipping it) when anvil is missing."""

from __future__ import annotations

import pytest

from ddx_offchain.devnet.anvil import AnvilProcess, find_anvil


class Anvil(AnvilProcess):
    def __init__(self, *extra_args: str) -> None:
        if find_anvil() is None:
            pytest.fail("anvil is missing: run `make install` (npm ci installs anvil)")
        super().__init__(*extra_args)
