"""The operator's config file (TOML), parsed into typed, validated settings (docs/operations.md).

Every error names the field and what was expected. The config never holds a private key: the operator's signing
key comes from an eth-account encrypted keystore (node/keystore.py), unlocked from an environment variable or a
prompt; the Raft TLS key is a separate file that must not be readable by group or others.
"""

from __future__ import annotations

import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ..chain.core.prices import PriceError, PriceRules
from ..chain.price_feed import PriceMarketSettings, PriceSettings, PriceSourceSettings
from ..chain.price_sources import PriceSourceError, preset_url
from ..errors import ConfigError
from ..node.rate_limits import MAX_BUCKETS, BucketSpec, RateLimitSettings, parse_trusted_proxies
from ..protocol.eip712 import Domain, parse_address
from ..protocol.errors import ProtocolError

_HOSTPORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>[0-9]{1,5})$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
MAX_CONFIG_BYTES = 1 << 20


class _Node(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    data_dir: str


class _Operator(msgspec.Struct, forbid_unknown_fields=True):
    keystore: str
    password_env: str = "DDX_KEYSTORE_PASSWORD"


class _Api(msgspec.Struct, forbid_unknown_fields=True):
    listen: str
    public_url: str = ""
    max_body_bytes: int = 24_576
    max_age_ms: int = 60_000
    max_future_ms: int = 5_000
    cancel_on_disconnect_margin_ms: int = 5_000
    # Worker threads that check request signatures in batches off the event loop (0: on the loop); pays only
    # when the operator has a spare core (docs/operations.md).
    admission_threads: int = 0


class _Raft(msgspec.Struct, forbid_unknown_fields=True):
    listen: str
    cert: str
    key: str
    tick_ms: int = 50
    election_ticks: int = 10
    snapshot_interval: int = 50_000
    snapshot_keep_entries: int = 5_000
    # The node's event loop also serves the API: writing the log on the disk thread keeps it answering while
    # an fsync is in flight (inline writes only pay off when fsync takes well under a millisecond).
    write_in_thread: bool = True
    # ...but write inline while the recent log writes took less than this (ms; 0 = never): docs/raft.md.
    inline_write_below_ms: float = 0.0
    proposal_timeout_ms: int = 10_000
    # Back-pressure bounds (docs/raft.md); unset ones keep the runtime's defaults (raft/runtime.py NodeConfig).
    max_inbox_messages: int | None = None  # messages queued per peer before its connection stops being read
    max_inbox_bytes: int | None = None
    max_uncommitted_bytes: int | None = None  # the leader refuses proposals beyond this much uncommitted data


class _Peer(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    raft: str
    cert: str
    api: str = ""


class _Chain(msgspec.Struct, forbid_unknown_fields=True):
    chain_id: int
    exchange: str
    rpc: str = ""
    manifest: str = ""
    confirmations: int | None = None  # None: the network's default (chain/operator_chain.py settings_for)
    epoch_interval_ms: int | None = None


class _Engine(msgspec.Struct, forbid_unknown_fields=True):
    genesis: str


class _History(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    path: str = ""
    # More request logs to repair history from, after the peers: replicas (`ddx replica`) serve the same API.
    backfill_sources: list[str] = []


class _PriceSource(msgspec.Struct, forbid_unknown_fields=True):
    name: str = ""
    chainlink: str = ""  # an AggregatorV3Interface address, read through [chain] rpc
    preset: str = ""  # a public ticker format (chain/price_sources.py PRESETS) ...
    symbol: str = ""  # ... with the exchange's pair name
    base_url: str = ""  # replaces the preset's scheme and host (a mirror)
    url: str = ""  # any JSON ticker ...
    path: str = ""  # ... and the field holding the price


class _PriceMarket(msgspec.Struct, forbid_unknown_fields=True):
    market: str
    decimals: int  # of the market's price unit: the quote token's decimals (6 for a 6-decimal stablecoin)
    sources: list[_PriceSource]


class _Prices(msgspec.Struct, forbid_unknown_fields=True):
    markets: list[_PriceMarket]
    poll_interval_ms: int = 1_000
    # The rules: unset ones take PriceRules' defaults (chain/core/prices.py), the one place they are written.
    staleness_ms: int | None = None
    outlier_bps: int | None = None
    min_sources: int | None = None
    max_change_bps: int | None = None
    cadence_ms: int | None = None
    move_bps: int | None = None
    tolerance_bps: int | None = None
    window_ms: int | None = None


class _Bucket(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    capacity: int | None = None  # None: RateLimitSettings' default for this bucket
    refill_per_s: int | None = None


class _RateLimits(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    max_buckets: int = MAX_BUCKETS
    trader: _Bucket = msgspec.field(default_factory=_Bucket)
    ip: _Bucket = msgspec.field(default_factory=_Bucket)
    connection: _Bucket = msgspec.field(default_factory=_Bucket)
    read: _Bucket = msgspec.field(default_factory=_Bucket)
    trusted_proxies: list[str] = []  # reverse proxies whose X-Forwarded-For names the client (addresses or CIDRs)


class _File(msgspec.Struct, forbid_unknown_fields=True):
    node: _Node
    operator: _Operator
    api: _Api
    raft: _Raft
    chain: _Chain
    engine: _Engine
    peers: list[_Peer] = []
    history: _History = msgspec.field(default_factory=_History)
    prices: _Prices | None = None
    rate_limits: _RateLimits = msgspec.field(default_factory=_RateLimits)


@dataclass(frozen=True, slots=True)
class PeerConfig:
    id: int
    raft: tuple[str, int]
    cert_pem: bytes
    api_url: str


@dataclass(frozen=True, slots=True)
class NodeSettings:
    node_id: int
    data_dir: Path
    keystore: Path
    password_env: str
    api_listen: tuple[str, int]
    api_public_url: str
    max_body_bytes: int
    max_age_ms: int
    max_future_ms: int
    cancel_on_disconnect_margin_ms: int
    admission_threads: int
    raft_listen: tuple[str, int]
    tls_cert_pem: bytes
    tls_key_pem: bytes
    tick_seconds: float
    election_ticks: int
    snapshot_interval: int
    snapshot_keep_entries: int
    write_in_thread: bool
    inline_write_below_seconds: float
    proposal_timeout_seconds: float
    peers: tuple[PeerConfig, ...]
    domain: Domain
    rpc: str
    manifest: Path | None
    genesis: Path
    history_path: Path | None
    chain_confirmations: int | None = None  # None: the network's default (6 public, 1 local dev chains)
    chain_epoch_interval_seconds: float | None = None  # None: the network's default (60 s public, 5 s local)
    prices: PriceSettings | None = None  # None: this operator neither sequences nor checks index prices
    raft_limits: tuple[tuple[str, int], ...] = ()  # the [raft] back-pressure bounds set in the config
    backfill_sources: tuple[str, ...] = ()  # [history] backfill_sources: replicas to repair history from
    rate_limits: RateLimitSettings | None = None  # [rate_limits]; None: no rate limits

    @property
    def api_urls(self) -> dict[int, str]:
        urls = {p.id: p.api_url for p in self.peers if p.api_url}
        if self.api_public_url:
            urls[self.node_id] = self.api_public_url
        return urls


def _host_port(value: str, field: str) -> tuple[str, int]:
    match = _HOSTPORT.match(value)
    if not match or not 0 < int(match["port"]) < 65536:
        raise ConfigError(f"{field}: expected host:port, got {value!r}")
    return match["host"].strip("[]"), int(match["port"])


def _url(value: str, field: str) -> str:
    if value and not re.match(r"^https?://[^\s/]+(/.*)?$", value):
        raise ConfigError(f"{field}: expected an http(s) URL, got {value!r}")
    return value


def _read(base: Path, value: str, field: str, *, secret: bool = False) -> bytes:
    path = (base / value).resolve()
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror}") from None
    if secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{field}: {path} is readable by group or others (chmod 600 it)")
    return data


def _positive(value: int, field: str, upper: int = 2**31) -> int:
    if not 0 < value < upper:
        raise ConfigError(f"{field}: must be in 1..{upper - 1}")
    return value


def _in_range(value: int, field: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ConfigError(f"{field}: must be in {low}..{high}")
    return value


def _non_negative_ms(value: float, field: str, upper: float = 1000.0) -> float:
    """Milliseconds in [0, upper], returned in seconds."""
    if not 0 <= value <= upper:
        raise ConfigError(f"{field}: must be in 0..{upper:g} (milliseconds)")
    return value / 1000


def parse_config(text: str, base_dir: Path) -> NodeSettings:
    """Validate a config document; relative paths resolve against `base_dir` (the config file's folder)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError("config file larger than 1 MiB")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    try:
        doc = msgspec.convert(raw, _File)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc)) from None
    node_id = _positive(doc.node.id, "node.id", 2**32)
    if not _ENV_NAME.match(doc.operator.password_env):
        raise ConfigError("operator.password_env: an environment variable name (A-Z, 0-9, _)")
    peer_ids = [p.id for p in doc.peers]
    if len(set(peer_ids)) != len(peer_ids) or node_id in peer_ids:
        raise ConfigError("peers: ids must be unique and differ from node.id")
    for i, p in enumerate(doc.peers):
        _positive(p.id, f"peers[{i}].id", 2**32)
    if not doc.chain.exchange:
        raise ConfigError("chain.exchange: not set yet (a new cluster: deploy the exchange with these operators, then "
                          "`ddx operator set-deployment --manifest … FOLDER`)")
    try:
        domain = Domain(doc.chain.chain_id, parse_address(doc.chain.exchange))
    except ProtocolError as exc:
        raise ConfigError(f"chain: {exc}") from None
    if domain.verifying_contract == b"\x00" * 20:
        raise ConfigError("chain.exchange: the zero address is not an exchange contract")
    data_dir = (base_dir / doc.node.data_dir).resolve()
    history_path = None
    if doc.history.enabled:
        # A node that catches up by snapshot fills its history from a peer's request log: without every peer's
        # API URL it would keep silent gaps (and the chain side could not collect that peer's signatures).
        missing = [p.id for p in doc.peers if not p.api]
        if missing:
            raise ConfigError(f"peers {missing}: api is required (history backfill and checkpoint signatures read "
                              "each peer's API); or set [history] enabled = false")
        history_path = (base_dir / doc.history.path).resolve() if doc.history.path else data_dir / "history.sqlite"
    return NodeSettings(
        node_id=node_id,
        data_dir=data_dir,
        keystore=(base_dir / doc.operator.keystore).resolve(),
        password_env=doc.operator.password_env,
        api_listen=_host_port(doc.api.listen, "api.listen"),
        api_public_url=_url(doc.api.public_url, "api.public_url"),
        max_body_bytes=_positive(doc.api.max_body_bytes, "api.max_body_bytes", 1 << 20),
        max_age_ms=_positive(doc.api.max_age_ms, "api.max_age_ms", 300_000),
        max_future_ms=_positive(doc.api.max_future_ms, "api.max_future_ms", 300_000),
        cancel_on_disconnect_margin_ms=_positive(
            doc.api.cancel_on_disconnect_margin_ms, "api.cancel_on_disconnect_margin_ms", 55_000
        ),
        admission_threads=_in_range(doc.api.admission_threads, "api.admission_threads", 0, 64),
        raft_listen=_host_port(doc.raft.listen, "raft.listen"),
        tls_cert_pem=_read(base_dir, doc.raft.cert, "raft.cert"),
        tls_key_pem=_read(base_dir, doc.raft.key, "raft.key", secret=True),
        tick_seconds=_positive(doc.raft.tick_ms, "raft.tick_ms", 10_000) / 1000,
        election_ticks=_positive(doc.raft.election_ticks, "raft.election_ticks", 1000),
        snapshot_interval=_positive(doc.raft.snapshot_interval, "raft.snapshot_interval"),
        snapshot_keep_entries=_positive(doc.raft.snapshot_keep_entries, "raft.snapshot_keep_entries"),
        write_in_thread=doc.raft.write_in_thread,
        inline_write_below_seconds=_non_negative_ms(doc.raft.inline_write_below_ms, "raft.inline_write_below_ms"),
        proposal_timeout_seconds=_positive(doc.raft.proposal_timeout_ms, "raft.proposal_timeout_ms", 600_000) / 1000,
        peers=tuple(
            PeerConfig(p.id, _host_port(p.raft, f"peers[{i}].raft"), _read(base_dir, p.cert, f"peers[{i}].cert"), _url(p.api, f"peers[{i}].api"))
            for i, p in enumerate(doc.peers)
        ),
        domain=domain,
        rpc=_url(doc.chain.rpc, "chain.rpc"),
        manifest=(base_dir / doc.chain.manifest).resolve() if doc.chain.manifest else None,
        genesis=(base_dir / doc.engine.genesis).resolve(),
        history_path=history_path,
        chain_confirmations=_confirmations(doc.chain.confirmations),
        chain_epoch_interval_seconds=_epoch_interval(doc.chain.epoch_interval_ms),
        prices=None if doc.prices is None else _prices(doc.prices, doc.chain.rpc),
        backfill_sources=tuple(_url(u, f"history.backfill_sources[{i}]") for i, u in enumerate(doc.history.backfill_sources)),
        rate_limits=_rate_limits(doc.rate_limits),
        raft_limits=tuple(
            (name, _positive(value, f"raft.{name}", 1 << 40))
            for name in ("max_inbox_messages", "max_inbox_bytes", "max_uncommitted_bytes")
            if (value := getattr(doc.raft, name)) is not None
        ),
    )


MAX_BUCKET_SIZE = 10**9


def _rate_limits(doc: _RateLimits) -> RateLimitSettings | None:
    if not doc.enabled:
        return None
    defaults = RateLimitSettings()
    buckets = {}
    for name in ("trader", "ip", "connection", "read"):
        given: _Bucket = getattr(doc, name)
        if not given.enabled:
            buckets[name] = None
            continue
        default: BucketSpec = getattr(defaults, name)
        capacity = default.capacity if given.capacity is None else given.capacity
        refill = default.refill_per_s if given.refill_per_s is None else given.refill_per_s
        buckets[name] = BucketSpec(
            _positive(capacity, f"rate_limits.{name}.capacity", MAX_BUCKET_SIZE + 1),
            _positive(refill, f"rate_limits.{name}.refill_per_s", MAX_BUCKET_SIZE + 1),
        )
    try:
        trusted = parse_trusted_proxies(doc.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"rate_limits.trusted_proxies: {exc}") from None
    return RateLimitSettings(**buckets, max_buckets=_positive(doc.max_buckets, "rate_limits.max_buckets", 10**8 + 1),
                             trusted_proxies=trusted)


def _prices(doc: _Prices, rpc: str) -> PriceSettings:
    try:
        given = {name: getattr(doc, name) for name in PriceRules.__dataclass_fields__}
        rules = PriceRules(**{name: value for name, value in given.items() if value is not None})
    except PriceError as exc:
        raise ConfigError(f"prices.{exc}") from None
    poll = _positive(doc.poll_interval_ms, "prices.poll_interval_ms", 3_600_001)
    if not doc.markets:
        raise ConfigError("prices.markets: list at least one market (or leave [prices] out)")
    markets, seen = [], set()
    for i, m in enumerate(doc.markets):
        field = f"prices.markets[{i}]"
        if not m.market or len(m.market.encode()) > 32:
            raise ConfigError(f"{field}.market: a market name of 1 to 32 bytes, as in the genesis")
        if m.market in seen:
            raise ConfigError(f"{field}.market: {m.market} listed twice")
        seen.add(m.market)
        if not 0 <= m.decimals <= 36:
            raise ConfigError(f"{field}.decimals: must be in 0..36")
        if not m.sources:
            raise ConfigError(f"{field}.sources: at least one source")
        sources = tuple(_price_source(src, f"{field}.sources[{j}]", rpc) for j, src in enumerate(m.sources))
        names = [src.name for src in sources]
        if len(set(names)) != len(names):
            raise ConfigError(f"{field}.sources: names must be unique (set name = ...)")
        if len(sources) < rules.min_sources:
            raise ConfigError(f"{field}.sources: {len(sources)} source(s), prices.min_sources is {rules.min_sources}")
        markets.append(PriceMarketSettings(m.market.encode().ljust(32, b"\0"), m.decimals, sources))
    return PriceSettings(rules, poll / 1000, tuple(markets))


def _price_source(src: _PriceSource, field: str, rpc: str) -> PriceSourceSettings:
    kinds = [k for k, v in (("chainlink", src.chainlink), ("preset", src.preset), ("url", src.url)) if v]
    if len(kinds) != 1:
        raise ConfigError(f"{field}: exactly one of chainlink, preset or url")
    if src.chainlink:
        if not rpc:
            raise ConfigError(f"{field}: a chainlink source is read through [chain] rpc, which is not set")
        try:
            address = "0x" + parse_address(src.chainlink).hex()
        except ProtocolError as exc:
            raise ConfigError(f"{field}.chainlink: {exc}") from None
        return PriceSourceSettings(src.name or f"chainlink:{address}", "chainlink", address=address)
    if src.preset:
        if not src.symbol:
            raise ConfigError(f"{field}: a preset needs symbol (the exchange's pair name)")
        try:
            url, path = preset_url(src.preset, src.symbol, _url(src.base_url, f"{field}.base_url"))
        except PriceSourceError as exc:
            raise ConfigError(f"{field}.preset: {exc}") from None
        return PriceSourceSettings(src.name or f"{src.preset}:{src.symbol}", "http", url=url, path=path)
    if not src.path:
        raise ConfigError(f"{field}: a url source needs path (the field holding the price, e.g. data.price)")
    url = _url(src.url, f"{field}.url")
    return PriceSourceSettings(src.name or url, "http", url=url, path=src.path)


MAX_CONFIRMATIONS = 1000
MIN_EPOCH_INTERVAL_MS = 100
MAX_EPOCH_INTERVAL_MS = 86_400_000  # a day: longer leaves withdrawals unclaimable for too long


def _confirmations(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_CONFIRMATIONS:
        raise ConfigError(f"chain.confirmations: must be in 0..{MAX_CONFIRMATIONS}")
    return value


def _epoch_interval(value: int | None) -> float | None:
    if value is None:
        return None
    if not MIN_EPOCH_INTERVAL_MS <= value <= MAX_EPOCH_INTERVAL_MS:
        raise ConfigError(f"chain.epoch_interval_ms: must be in {MIN_EPOCH_INTERVAL_MS}..{MAX_EPOCH_INTERVAL_MS}")
    return value / 1000


def load_config(path: Path | str) -> NodeSettings:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    return parse_config(text, path.parent.resolve())
