"""The ABIs shipped in the package (what the SDK and the operators talk to the chain with, no compiler needed) are
the compiled contracts' ABIs. After changing a contract: `python -m ddx_offchain.deployment.toolchain write-abi`."""

import pytest

from ddx_offchain.deployment.artifacts import SOURCES, ArtifactError, compile_contract, shipped_abi


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_shipped_abi_equals_the_compiled_one(name):
    key = lambda entry: (entry.get("type", ""), entry.get("name", ""))  # noqa: E731
    assert sorted(shipped_abi(name), key=key) == sorted(compile_contract(name).abi, key=key)


def test_an_unknown_contract_has_no_shipped_abi():
    with pytest.raises(ArtifactError):
        shipped_abi("Nope")
