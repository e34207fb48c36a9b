"""`ddx replica`: run a public replica (replica/node.py) behind the same read API as an operator, until SIGTERM.

Start order: genesis -> replica (restores its snapshot) -> API -> following and auditing. Stop: the reverse, with
a last snapshot, so a restart resumes where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ..api.server import build_app
from ..chain.rpc import ChainRpc
from ..engine.config import GenesisConfig
from ..node.rate_limits import BucketSpec, parse_trusted_proxies
from ..protocol.eip712 import Domain
from ..replica.node import READ_LIMIT, Replica, ReplicaFacade

log = logging.getLogger("ddx.replica")


@dataclass(frozen=True)
class ReplicaSettings:
    domain: Domain
    genesis: GenesisConfig
    data_dir: Path
    sources: tuple[str, ...]  # operator API URLs, in order of preference
    listen: tuple[str, int]
    confirmations: int = 0
    snapshot_every: int = 10_000
    read_limit: BucketSpec | None = READ_LIMIT  # per-IP reads (None: unlimited)
    trusted_proxies: tuple = ()  # reverse proxies whose X-Forwarded-For names the client


class ReplicaProcess:
    """A replica with its API started (also used in-process by tests and the devnet)."""

    def __init__(self, settings: ReplicaSettings, rpc: ChainRpc) -> None:
        self.settings = settings
        self.replica = Replica(
            domain=settings.domain,
            genesis=settings.genesis,
            data_dir=settings.data_dir,
            sources=list(settings.sources),
            rpc=rpc,
            confirmations=settings.confirmations,
            snapshot_every=settings.snapshot_every,
            read_limit=settings.read_limit,
            trusted_proxies=settings.trusted_proxies,
        )
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host, port = self.settings.listen
        return f"http://{host}:{port}"

    async def start(self) -> None:
        self.replica.restore()  # before serving: no read sees the empty state
        # /v1/info names the operators it follows: the web app served here sends its signed requests to them
        info = {"replica": True, "operators": [{"id": str(i), "api": url} for i, url in
                                               enumerate(self.settings.sources, start=1)]}
        self.runner = web.AppRunner(build_app(ReplicaFacade(self.replica), info=info), access_log=None)
        await self.runner.setup()
        host, port = self.settings.listen
        await web.TCPSite(self.runner, host, port, reuse_address=True).start()
        await self.replica.start_following()
        log.info("replica serving the read API on %s:%d, following %s", host, port, ", ".join(self.settings.sources))

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        await self.replica.stop()


def parse_read_limit(text: str) -> BucketSpec | None:
    """`--read-limit CAPACITY/PER_SECOND` (reads per client IP), or `off`."""
    if text == "off":
        return None
    capacity, _, refill = text.partition("/")
    if not (capacity.isdigit() and refill.isdigit()) or int(capacity) < 1 or int(refill) < 1:
        raise ValueError(f"--read-limit {text!r} is not CAPACITY/PER_SECOND (positive integers) or off")
    return BucketSpec(int(capacity), int(refill))


async def serve(settings: ReplicaSettings, rpc: ChainRpc) -> None:
    from .run import run_until_signalled

    await run_until_signalled(ReplicaProcess(settings, rpc))


def main(*, manifest_path: str, genesis_path: str, sources: list[str], rpc_url: str, data_dir: str, listen: str,
         confirmations: int, read_limit: str = f"{READ_LIMIT.capacity}/{READ_LIMIT.refill_per_s}",
         trusted_proxies: list[str] | None = None) -> int:
    """`ddx replica` (cli/app.py): settings from the command line; 2 on a configuration error."""
    import sys

    from ..chain.rpc import Web3ChainRpc, http_web3
    from ..deployment.artifacts import shipped_abi
    from ..deployment.genesis import load_genesis
    from ..deployment.manifest import ManifestError, load_manifest
    from .config import ConfigError
    from .run import _event_loop_runner, setup_logging

    try:
        manifest = load_manifest(manifest_path)
        genesis = load_genesis(Path(genesis_path))
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--listen {listen!r} is not HOST:PORT")
        if not sources:
            raise ValueError("give at least one --source (an operator's API URL)")
        reads = parse_read_limit(read_limit)
        proxies = parse_trusted_proxies(trusted_proxies or [])
    except (ManifestError, ConfigError, ValueError, OSError) as exc:
        print(f"ddx replica: {exc}", file=sys.stderr)
        return 2
    setup_logging(0)
    settings = ReplicaSettings(
        domain=Domain.of(manifest.chain_id, manifest.exchange),
        genesis=genesis,
        data_dir=Path(data_dir),
        sources=tuple(sources),
        listen=(host, int(port)),
        confirmations=confirmations,
        read_limit=reads,
        trusted_proxies=proxies,
    )
    rpc = Web3ChainRpc(http_web3(rpc_url), manifest.exchange, shipped_abi("Exchange"))
    _event_loop_runner()(serve(settings, rpc))
    return 0
