"""Standing up a cluster without Python: `ddx operator init` writes, for every operator, a folder to copy to its
machine — a fresh signing key in an encrypted keystore, a TLS identity, the peers' certificates, the shared genesis
and a config with every field explained — and `ddx operator set-deployment` fills in the deployed exchange
afterwards (the contract needs the operators' addresses first). docs/operations.md, "From zero".

The keystore KDF is scrypt with n = 65,536, r = 8, p = 1 (64 MiB, about 0.2 s to unlock on a 2-core machine):
memory-hard like eth-account's default (n = 262,144, ~0.8 s per start), cheaper to start. `--kdf-n` chooses.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..deployment.genesis import example_genesis, parse_genesis
from ..deployment.manifest import load_manifest
from ..errors import ConfigError
from ..protocol.eip712 import address_of, checksum_address
from ..protocol.errors import ProtocolError
from ..raft.certs import generate_operator_certificate
from .keystore import write_keystore, write_secret

DEFAULT_KDF_N = 65_536
DEFAULT_PASSWORD_ENV = "DDX_KEYSTORE_PASSWORD"
# Every market field a genesis needs; a spec names the market and its token and overrides what it wants.
MARKET_DEFAULTS = {k: v for k, v in example_genesis("0x" + "00" * 20)["markets"][0].items() if k not in ("market", "token")}
_HOST = re.compile(r"^[A-Za-z0-9.\-]+$")


@dataclass(frozen=True, slots=True)
class OperatorPlan:
    id: int
    host: str
    raft_port: int
    api_port: int
    public_url: str


def plan_cluster(hosts: list[str], *, raft_port: int = 9001, api_port: int = 8001, scheme: str = "https") -> list[OperatorPlan]:
    """One operator per host entry; operators sharing a host get consecutive ports."""
    if not 1 <= len(hosts) <= 32:
        raise ConfigError("--hosts: 1 to 32 operators")
    if scheme not in ("http", "https"):
        raise ConfigError("--scheme: http or https")
    plans, used = [], {}
    for i, host in enumerate(hosts, start=1):
        if not _HOST.match(host):
            raise ConfigError(f"--hosts: {host!r} is not a host name or IPv4 address")
        k = used.get(host, 0)
        used[host] = k + 1
        api = api_port + k
        plans.append(OperatorPlan(i, host, raft_port + k, api, f"{scheme}://{host}:{api}"))
    return plans


def genesis_from_spec(spec: dict) -> dict:
    """A genesis document from a short description: `tokens` (addresses) and `markets` (each at least `market` and
    `token`; every other field defaults to the values docs/engine.md explains). Validated as `ddx node` would."""
    if not isinstance(spec, dict) or not isinstance(spec.get("markets"), list) or not spec["markets"]:
        raise ConfigError("genesis spec: needs a non-empty `markets` list (and `tokens`)")
    markets = []
    for i, m in enumerate(spec["markets"]):
        if not isinstance(m, dict) or "market" not in m or "token" not in m:
            raise ConfigError(f"genesis spec: markets[{i}] needs `market` (a name) and `token` (an address)")
        unknown = set(m) - set(MARKET_DEFAULTS) - {"market", "token"}
        if unknown:
            raise ConfigError(f"genesis spec: markets[{i}] has unknown fields {sorted(unknown)}")
        markets.append({"market": m["market"], "token": m["token"]} | {k: m.get(k, v) for k, v in MARKET_DEFAULTS.items()})
    tokens = spec.get("tokens") or sorted({m["token"] for m in markets})
    genesis = {k: v for k, v in spec.items() if k not in ("tokens", "markets")} | {"tokens": tokens, "markets": markets}
    try:
        parse_genesis(json.loads(json.dumps(genesis)))
    except (ProtocolError, ValueError) as exc:
        raise ConfigError(f"genesis spec: {exc}") from None
    return genesis


def load_spec(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"genesis spec: cannot read {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"genesis spec {path}: {exc}") from None


def render_config(
    me: OperatorPlan,
    peers: list[OperatorPlan],
    *,
    chain_id: int,
    exchange: str,
    rpc: str = "",
    manifest: str = "",
    password_env: str = DEFAULT_PASSWORD_ENV,
    keystore: str = "keystore.json",
    cert: str = "tls.crt",
    key: str = "tls.key",
    peer_cert: str = "peers/op{id}.crt",
    genesis: str = "genesis.json",
    data_dir: str = "data",
    listen_host: str = "0.0.0.0",
    raft: dict | None = None,
    api: dict | None = None,
    rate_limits: dict | None = None,
) -> str:
    """The operator's config (docs/operations.md, "Config reference"), every field explained."""
    q = json.dumps
    lines = [
        f"# ddx operator {me.id} of {len(peers) + 1}. Check it with: ddx operator check --config THIS_FILE",
        "# Relative paths resolve from this file's folder.",
        "",
        "[node]",
        f"id = {me.id}                          # Raft node id, unique in the cluster",
        f"data_dir = {q(data_dir)}              # Raft log, snapshots, history",
        "",
        "[operator]",
        f"keystore = {q(keystore)}      # the encrypted signing key (receipts, checkpoints)",
        f"password_env = {q(password_env)}  # the environment variable holding its password",
        "",
        "[api]",
        f"listen = {q(f'{listen_host}:{me.api_port}')}",
        f"public_url = {q(me.public_url)}   # what clients are told to use for this operator",
        *(f"{k} = {_value(v)}" for k, v in (api or {}).items()),
        "",
        "[raft]",
        f"listen = {q(f'{listen_host}:{me.raft_port}')}",
        f"cert = {q(cert)}              # this operator's TLS identity (peers pin it)",
        f"key = {q(key)}                # its private key: mode 600",
        *(f"{k} = {_value(v)}" for k, v in (raft or {}).items()),
        "",
    ]
    for p in peers:
        lines += [
            "[[peers]]",
            f"id = {p.id}",
            f"raft = {q(f'{p.host}:{p.raft_port}')}",
            f"cert = {q(peer_cert.format(id=p.id))}   # the peer's certificate: only it is accepted as node {p.id}",
            f"api = {q(p.public_url)}   # its API: history backfill and checkpoint signatures",
            "",
        ]
    lines += [
        "[chain]",
        f"chain_id = {chain_id}                 # with exchange: the EIP-712 domain of every request and receipt",
        f"exchange = {q(exchange)}",
    ]
    if rpc:
        lines.append(f"rpc = {q(rpc)}   # set: this node runs its chain side (watcher, checkpointer)")
    if manifest:
        lines.append(f"manifest = {q(manifest)}   # deployment block and operator set, checked at start")
    lines += ["", "[engine]", f"genesis = {q(genesis)}", ""]
    if rate_limits is not None:  # unset: [rate_limits]' defaults (docs/operations.md)
        lines += ["[rate_limits]", *(f"{k} = {_value(v)}" for k, v in rate_limits.items()), ""]
    return "\n".join(lines)


def _value(v) -> str:
    return json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)


@dataclass(frozen=True, slots=True)
class InitResult:
    folders: list[Path]
    addresses: list[str]


def init_cluster(
    out: Path,
    plans: list[OperatorPlan],
    genesis: dict,
    password: str,
    *,
    rpc: str = "",
    manifest: Path | None = None,
    password_env: str = DEFAULT_PASSWORD_ENV,
    kdf_n: int = DEFAULT_KDF_N,
) -> InitResult:
    """Write out/op{i}/ for every planned operator. Without `manifest` the [chain] section waits for `set_deployment`
    (the contract needs these operators' addresses before it exists)."""
    if not password:
        raise ConfigError(f"{password_env}: set it to the keystore password before running init")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty: init never overwrites keys")
    identities = {p.id: generate_operator_certificate(f"ddx-operator-{p.id}") for p in plans}
    folders, addresses = [], []
    for me in plans:
        folder = out / f"op{me.id}"
        (folder / "peers").mkdir(parents=True)
        key = os.urandom(32)
        write_keystore(folder / "keystore.json", key, password, kdf="scrypt", iterations=kdf_n)
        (folder / "tls.crt").write_bytes(identities[me.id].cert_pem)
        write_secret(folder / "tls.key", identities[me.id].key_pem)
        for p in plans:
            if p.id != me.id:
                (folder / "peers" / f"op{p.id}.crt").write_bytes(identities[p.id].cert_pem)
        (folder / "genesis.json").write_text(json.dumps(genesis, indent=1))
        peers = [p for p in plans if p.id != me.id]
        (folder / "node.toml").write_text(
            render_config(me, peers, chain_id=0, exchange="", rpc=rpc, password_env=password_env)
        )
        folders.append(folder)
        addresses.append(checksum_address(address_of(key)))
    if manifest is not None:
        set_deployment(out, manifest, rpc=rpc)
    return InitResult(folders, addresses)


def set_deployment(out: Path, manifest_path: Path, *, rpc: str = "") -> list[Path]:
    """Point every operator folder under `out` at a deployed exchange: copy the manifest in and rewrite [chain]."""
    manifest = load_manifest(manifest_path)
    written = []
    for config in sorted(out.glob("op*/node.toml")):
        (config.parent / "manifest.json").write_text(manifest.to_json())
        text = config.read_text()
        head, _, tail = text.partition("[chain]")
        _, _, rest = tail.partition("[engine]")
        chain = [
            "[chain]",
            f"chain_id = {manifest.chain_id}                 # with exchange: the EIP-712 domain of every request",
            f"exchange = {json.dumps(manifest.exchange)}",
            'manifest = "manifest.json"   # deployment block and operator set, checked at start',
        ]
        if rpc:
            chain.append(f"rpc = {json.dumps(rpc)}   # set: this node runs its chain side (watcher, checkpointer)")
        config.write_text(head + "\n".join(chain) + "\n\n[engine]" + rest)
        written.append(config)
    if not written:
        raise ConfigError(f"no op*/node.toml under {out}")
    return written

