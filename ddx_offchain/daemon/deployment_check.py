"""Start-up consistency between an operator's config, its key and the deployment manifest (docs/operations.md).

When `chain.manifest` is set, the node refuses to start unless the manifest's chain id and exchange match the
config's EIP-712 domain and the keystore's address is in the manifest's operator set: an operator signing
receipts with a key the contract does not know would hand out receipts nobody can verify.
"""

from __future__ import annotations

from ..deployment.manifest import Manifest, ManifestError, load_manifest
from ..protocol.eip712 import checksum_address, parse_address
from .config import ConfigError, NodeSettings


def check_deployment(settings: NodeSettings, operator_address: bytes) -> Manifest | None:
    if settings.manifest is None:
        return None
    try:
        manifest = load_manifest(settings.manifest)
    except (ManifestError, OSError) as exc:
        raise ConfigError(f"chain.manifest: {exc}") from None
    if manifest.chain_id != settings.domain.chain_id:
        raise ConfigError(f"chain.chain_id {settings.domain.chain_id} differs from the manifest's {manifest.chain_id}")
    if parse_address(manifest.exchange) != settings.domain.verifying_contract:
        raise ConfigError(f"chain.exchange differs from the manifest's {manifest.exchange}")
    operators = {parse_address(a.lower()) for a in manifest.operators}
    if operator_address not in operators:
        raise ConfigError(f"the keystore's address {checksum_address(operator_address)} is not in the deployment's operator set")
    return manifest
