"""Deployment manifests: what `ape run deploy` (or the devnet) deployed, where, and with which settings.

A manifest is one JSON file per deployment, never overwritten. `latest.json` in the same folder names the
newest one; when a new deployment supersedes it the old file stays and the writer reports it.

    deployments/<network>-<chain id>/<exchange address>-<block>.json    one per deployment
    deployments/<network>-<chain id>/latest.json                         copy of the newest
    deployments/<network>-<chain id>/abi/<Contract>-<sha8>.json          ABIs, named by content hash
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_utils import is_address, to_checksum_address

from ..errors import DdxError

MANIFEST_VERSION = 2  # 2: forced_deadline (the inbox and forced requests)
LATEST = "latest.json"
MAX_MANIFEST_BYTES = 1 << 20


class ManifestError(DdxError, ValueError):
    """A manifest file is missing, malformed, or would overwrite another deployment."""


@dataclass(frozen=True)
class CollateralEntry:
    token: str
    symbol: str
    decimals: int
    capacity: int
    period: int
    mock: bool = False


@dataclass(frozen=True)
class Manifest:
    network: str
    chain_id: int
    exchange: str
    deployment_block: int
    deployer: str
    operators: tuple[str, ...]
    threshold: int
    operator_set_id: int
    supermajority_required: bool
    escape_delay: int
    forced_deadline: int
    governance_delay: int
    collateral: tuple[CollateralEntry, ...]
    abi_paths: dict[str, str] = field(default_factory=dict)  # contract name -> path relative to the manifest
    version: int = MANIFEST_VERSION

    @property
    def mock_token(self) -> str | None:
        return next((c.token for c in self.collateral if c.mock), None)

    def to_json(self) -> str:
        data = asdict(self)
        data["operators"] = list(self.operators)
        data["collateral"] = [asdict(c) for c in self.collateral]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
                raise ManifestError(f"unsupported manifest version {data.get('version') if isinstance(data, dict) else None!r}")
            return cls(
                network=_str(data["network"], "network"),
                chain_id=_int(data["chain_id"], "chain_id"),
                exchange=_addr(data["exchange"], "exchange"),
                deployment_block=_int(data["deployment_block"], "deployment_block"),
                deployer=_addr(data["deployer"], "deployer"),
                operators=tuple(_addr(a, "operator") for a in _list(data["operators"], "operators")),
                threshold=_int(data["threshold"], "threshold"),
                operator_set_id=_int(data["operator_set_id"], "operator_set_id"),
                supermajority_required=_bool(data["supermajority_required"], "supermajority_required"),
                escape_delay=_int(data["escape_delay"], "escape_delay"),
                forced_deadline=_int(data["forced_deadline"], "forced_deadline"),
                governance_delay=_int(data["governance_delay"], "governance_delay"),
                collateral=tuple(
                    CollateralEntry(
                        token=_addr(c["token"], "collateral token"),
                        symbol=_str(c["symbol"], "collateral symbol"),
                        decimals=_int(c["decimals"], "collateral decimals"),
                        capacity=_int(c["capacity"], "collateral capacity"),
                        period=_int(c["period"], "collateral period"),
                        mock=_bool(c.get("mock", False), "collateral mock"),
                    )
                    for c in _list(data["collateral"], "collateral")
                ),
                abi_paths={_str(k, "abi name"): _str(v, "abi path") for k, v in dict(data.get("abi_paths", {})).items()},
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"malformed manifest: {exc!r}") from None


def deployments_root() -> Path:
    """Where manifests go: $DDX_DEPLOYMENTS_DIR, else ./deployments of the repository."""
    override = os.environ.get("DDX_DEPLOYMENTS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "deployments"


def network_folder(network: str, chain_id: int, root: Path | None = None) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in network)
    return (root or deployments_root()) / f"{safe}-{chain_id}"


def write_abi(folder: Path, name: str, abi: list) -> str:
    """Store an ABI under a content-addressed name; returns its path relative to `folder`."""
    text = json.dumps(abi, indent=1, sort_keys=True) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    relative = f"abi/{name}-{digest}.json"
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        _atomic_write(target, text)
    return relative


@dataclass(frozen=True)
class WrittenManifest:
    path: Path
    latest: Path
    superseded: str | None  # exchange address of the deployment `latest.json` named before, if any


def write_manifest(manifest: Manifest, folder: Path) -> WrittenManifest:
    """Write `manifest` to its own new file and point latest.json at it. Never overwrites a deployment file."""
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{manifest.exchange}-{manifest.deployment_block}"
    path = folder / f"{base}.json"
    suffix = 2
    while path.exists():  # a fresh local chain can reuse an address and block: keep both files
        path = folder / f"{base}-{suffix}.json"
        suffix += 1
    text = manifest.to_json()
    _atomic_write(path, text, exclusive=True)
    latest = folder / LATEST
    superseded = None
    if latest.exists():
        try:
            superseded = Manifest.from_json(latest.read_text()).exchange
        except ManifestError:
            superseded = "(unreadable)"
    _atomic_write(latest, text)
    return WrittenManifest(path=path, latest=latest, superseded=superseded)


def load_manifest(path: str | Path) -> Manifest:
    """Load a manifest file, or the latest one of a network folder."""
    path = Path(path)
    if path.is_dir():
        path = path / LATEST
    if not path.is_file():
        raise ManifestError(f"no manifest at {path}")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes")
    return Manifest.from_json(path.read_text())


def load_abi(manifest_path: str | Path, manifest: Manifest, name: str) -> list:
    """The ABI of contract `name` as recorded next to the manifest."""
    folder = Path(manifest_path)
    folder = folder if folder.is_dir() else folder.parent
    try:
        relative = manifest.abi_paths[name]
    except KeyError:
        raise ManifestError(f"manifest has no ABI for {name}") from None
    return json.loads((folder / relative).read_text())


def _atomic_write(path: Path, text: str, exclusive: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    if exclusive:
        try:
            os.link(tmp, path)  # fails if `path` appeared meanwhile: never clobber a deployment
        except FileExistsError:
            raise ManifestError(f"{path} already exists") from None
        finally:
            tmp.unlink()
    else:
        os.replace(tmp, path)


def _addr(value, what: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise ManifestError(f"{what} is not an address: {value!r:.60}")
    return to_checksum_address(value)


def _int(value, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"{what} must be a non-negative integer")
    return value


def _bool(value, what: str) -> bool:
    if not isinstance(value, bool):
        raise ManifestError(f"{what} must be true or false")
    return value


def _str(value, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ManifestError(f"{what} must be a non-empty string")
    return value


def _list(value, what: str) -> list:
    if not isinstance(value, list) or len(value) > 256:
        raise ManifestError(f"{what} must be a list of at most 256 entries")
    return value
