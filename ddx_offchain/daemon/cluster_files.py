"""Write the files of an N-operator cluster on one machine: per operator a TLS identity, an encrypted keystore
and a config; one shared genesis. Used by the devnet, the cluster tests and benchmarks/e2e.py.

Rate limits are off unless `rate_limits` says otherwise: all the load of a local cluster comes from one address.
The keystores use a cheap KDF (`kdf_iterations`) because these clusters are throwaway; a real operator creates
its keystore with eth-account's defaults.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ..protocol.eip712 import Domain, address_of, checksum_address
from ..raft.certs import generate_operator_certificate
from .keystore import write_keystore, write_secret
from .provision import OperatorPlan, render_config


@dataclass(frozen=True, slots=True)
class LocalCluster:
    root: Path
    configs: list[Path]
    api_urls: list[str]
    operator_keys: list[bytes]
    password_env: str
    password: str
    domain: Domain

    @property
    def operators(self) -> frozenset[bytes]:
        return frozenset(address_of(k) for k in self.operator_keys)

    def env(self) -> dict[str, str]:
        return {**os.environ, self.password_env: self.password}


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_cluster(
    root: Path,
    n: int,
    domain: Domain,
    genesis: dict,
    *,
    raft_overrides: dict | None = None,
    api_overrides: dict | None = None,
    rate_limits: dict | None = None,
    kdf_iterations: int = 2048,
    password: str = "devnet-password",
) -> LocalCluster:
    root.mkdir(parents=True, exist_ok=True)
    (root / "genesis.json").write_text(json.dumps(genesis, indent=1))
    ports = free_ports(2 * n)
    api_ports, raft_ports = ports[:n], ports[n:]
    ids = list(range(1, n + 1))
    for i in ids:
        cert = generate_operator_certificate(f"ddx-operator-{i}")
        (root / f"op{i}.crt").write_bytes(cert.cert_pem)
        write_secret(root / f"op{i}.key", cert.key_pem)
    keys = [os.urandom(32) for _ in ids]
    password_env = "DDX_DEVNET_PASSWORD"
    plans = [OperatorPlan(i, "127.0.0.1", raft_ports[i - 1], api_ports[i - 1], f"http://127.0.0.1:{api_ports[i - 1]}") for i in ids]
    configs = []
    for me, key in zip(plans, keys):
        i = me.id
        write_keystore(root / f"op{i}.keystore.json", key, password, iterations=kdf_iterations)
        text = render_config(
            me, [p for p in plans if p.id != i], chain_id=domain.chain_id,
            exchange=checksum_address(domain.verifying_contract), password_env=password_env,
            keystore=f"op{i}.keystore.json", cert=f"op{i}.crt", key=f"op{i}.key", peer_cert="op{id}.crt",
            data_dir=f"data{i}", listen_host="127.0.0.1", raft={"tick_ms": 20} | (raft_overrides or {}),
            api=api_overrides or {},
            # every client of a local cluster is 127.0.0.1 (tests, benchmarks, the devnet): no limits unless asked
            rate_limits={"enabled": False} if rate_limits is None else rate_limits,
        )
        path = root / f"op{i}.toml"
        path.write_text(text)
        configs.append(path)
    return LocalCluster(root, configs, [f"http://127.0.0.1:{p}" for p in api_ports], keys, password_env, password, domain)
