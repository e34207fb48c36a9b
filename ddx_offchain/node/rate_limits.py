"""Rate limits at admission: token buckets per trader, per client IP, per request-channel connection, and one per
client IP for reads (docs/api.md, "Rate limits"; the sizes are the config's [rate_limits], docs/operations.md).

`TokenBucket` is integer arithmetic with the time passed in: it reads no clock. Its level is kept in milli-tokens
and its refill is whole tokens per second, so a refill over `dt` ms adds exactly `refill_per_s × dt` milli-tokens and
the wait until a cost is available is an exact whole number of milliseconds (rounded up). `RateLimiter` holds the
buckets in bounded maps and reads the clock it is given.

Order at admission (node/admission.py): the API refuses a request whose IP (or connection) bucket is empty before
it reads the body; after parsing, the request's cost (its number of actions) is taken from the IP and connection
buckets, the trader's bucket is checked (not charged), the signature is recovered, and only then is the trader's
bucket charged. So a forged request naming someone else's address costs the sender's IP, never that trader.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from .admission import AdmissionError

MILLI = 1000  # milli-tokens per token
TRADER, IP, CONNECTION, READ = "trader", "ip", "connection", "read"
MAX_BUCKETS = 100_000  # per map (traders, IPs, read IPs): a bucket is ~200 bytes, so ~20 MB each at most


class RateLimited(AdmissionError):
    """A bucket lacks the request's cost now: 429, retry after `retry_after_ms` (exact) or `Retry-After` seconds."""

    def __init__(self, bucket: str, retry_after_ms: int) -> None:
        super().__init__(
            "rate_limited",
            f"{bucket} rate limit: retry in {retry_after_ms} ms",
            bucket=bucket,
            retryAfterMs=str(retry_after_ms),
        )
        self.bucket = bucket
        self.retry_after_ms = retry_after_ms

    @property
    def retry_after_s(self) -> int:
        """`Retry-After` (whole seconds): rounded up, so a client that waits that long finds the tokens there."""
        return -(-self.retry_after_ms // MILLI)


class CostExceedsLimit(AdmissionError):
    """The request costs more than the bucket can ever hold: it can never pass (split the batch)."""

    def __init__(self, bucket: str, cost: int, capacity: int) -> None:
        super().__init__(
            "cost_exceeds_limit",
            f"this request costs {cost} and the {bucket} bucket holds at most {capacity}: send fewer actions",
            bucket=bucket,
            cost=str(cost),
            capacity=str(capacity),
        )
        self.bucket = bucket


@dataclass(frozen=True, slots=True)
class BucketSpec:
    capacity: int  # tokens when full (the burst)
    refill_per_s: int  # tokens added per second

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.refill_per_s < 1:
            raise ValueError("a bucket's capacity and refill_per_s are positive integers")

    @property
    def full_after_ms(self) -> int:
        """An empty bucket is full again after this long."""
        return -(-self.capacity * MILLI // self.refill_per_s)


class TokenBucket:
    """One token bucket. Every method takes `now_ms` (any clock that does not go back; if it does, no refill)."""

    __slots__ = ("spec", "level", "stamp")

    def __init__(self, spec: BucketSpec, now_ms: int) -> None:
        self.spec = spec
        self.level = spec.capacity * MILLI  # milli-tokens
        self.stamp = now_ms

    def _refill(self, now_ms: int) -> None:
        if now_ms > self.stamp:
            self.level = min(self.spec.capacity * MILLI, self.level + (now_ms - self.stamp) * self.spec.refill_per_s)
            self.stamp = now_ms

    def wait_ms(self, cost: int, now_ms: int) -> int:
        """0 if `cost` tokens are there now, else the milliseconds until they are (rounded up). `cost` must not
        exceed the capacity (it would never be there)."""
        self._refill(now_ms)
        missing = cost * MILLI - self.level
        return 0 if missing <= 0 else -(-missing // self.spec.refill_per_s)

    def take(self, cost: int) -> None:
        """Remove `cost` tokens: only right after `wait_ms(cost, now)` answered 0."""
        self.level -= cost * MILLI

    def is_full(self, now_ms: int) -> bool:
        self._refill(now_ms)
        return self.level >= self.spec.capacity * MILLI

    def tokens(self, now_ms: int) -> int:
        """Whole tokens available now (for tests and diagnostics)."""
        self._refill(now_ms)
        return self.level // MILLI


class BucketMap:
    """Buckets by key, bounded: a key's bucket is created on first charge, and the least recently used ones are
    dropped when they are full again (then a fresh bucket is the same) or, at `max_buckets`, regardless."""

    def __init__(self, spec: BucketSpec, max_buckets: int = MAX_BUCKETS) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be positive")
        self.spec = spec
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def peek(self, key: Hashable) -> TokenBucket | None:
        """The key's bucket if it has one (an absent one is full), without creating it or touching its age."""
        return self._buckets.get(key)

    def get(self, key: Hashable, now_ms: int) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is not None:
            self._buckets.move_to_end(key)
            return bucket
        self._evict(now_ms)
        bucket = self._buckets[key] = TokenBucket(self.spec, now_ms)
        return bucket

    def _evict(self, now_ms: int) -> None:
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if len(buckets) < self.max_buckets and not oldest.is_full(now_ms):
                break
            buckets.popitem(last=False)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """The [rate_limits] config: None disables a bucket."""

    trader: BucketSpec | None = BucketSpec(100, 50)
    ip: BucketSpec | None = BucketSpec(200, 100)
    connection: BucketSpec | None = BucketSpec(100, 50)
    read: BucketSpec | None = BucketSpec(200, 100)
    max_buckets: int = MAX_BUCKETS
    # Reverse proxies whose X-Forwarded-For is believed (see `client_address`); empty: the TCP peer is the client.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


class Origin:
    """Where a request came from: the client's IP key and, on the WebSocket request channel, that connection's
    bucket (it lives as long as the connection: no map)."""

    __slots__ = ("ip", "connection")

    def __init__(self, ip: str, connection: TokenBucket | None = None) -> None:
        self.ip = ip
        self.connection = connection


def ip_key(remote: str | None) -> str:
    """The bucket key of a client address: the IPv4 address, or the /64 of an IPv6 one (one host's usual share)."""
    if not remote:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def parse_trusted_proxies(items: list[str] | tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses or networks ("10.0.0.0/8", "127.0.0.1", "fd00::/8"); ValueError naming the bad one."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {item!r} is not an IP address or network") from None
    return tuple(out)


def _is_trusted(address: str, trusted: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in trusted)


def client_address(remote: str | None, forwarded_for: str | None, trusted: tuple) -> str | None:
    """The client a request is charged to. The TCP peer (`remote`), unless it is a trusted proxy and sent an
    `X-Forwarded-For` (each proxy appends the address it received the request from): then the right-most address in
    that list which is not itself a trusted proxy — the first hop nobody we trust vouches for. Entries left of it
    are whatever the client wrote and are never believed, so a client cannot choose its own bucket; an entry that is
    not an address, met before that hop, means a trusted proxy wrote nonsense: the peer is charged."""
    if not trusted or not forwarded_for or remote is None or not _is_trusted(remote, trusted):
        return remote
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0]  # every hop is a trusted proxy: the first one is where the request came from


class RateLimiter:
    """All of one node's buckets. `clock_ms` should be monotonic; `on_refused(bucket)` counts refusals."""

    def __init__(
        self,
        settings: RateLimitSettings,
        clock_ms: Callable[[], int],
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._clock_ms = clock_ms
        self._on_refused = on_refused
        self.traders = BucketMap(settings.trader, settings.max_buckets) if settings.trader else None
        self.ips = BucketMap(settings.ip, settings.max_buckets) if settings.ip else None
        self.reads = BucketMap(settings.read, settings.max_buckets) if settings.read else None

    def _refuse(self, bucket: str, wait_ms: int) -> RateLimited:
        if self._on_refused is not None:
            self._on_refused(bucket)
        return RateLimited(bucket, wait_ms)

    def _too_costly(self, bucket: str, cost: int, spec: BucketSpec) -> None:
        if cost > spec.capacity:
            if self._on_refused is not None:
                self._on_refused(bucket)
            raise CostExceedsLimit(bucket, cost, spec.capacity)

    # ------------------------------------------------------------ origins (IP, connection)

    def client(self, remote: str | None, headers: Mapping[str, str]) -> str | None:
        """The client address of a request from TCP peer `remote` with these HTTP headers (`client_address`)."""
        return client_address(remote, headers.get("X-Forwarded-For"), self.settings.trusted_proxies)

    def origin(self, remote: str | None, *, connection: bool = False) -> Origin:
        """The origin of a request from `remote`; `connection`: a new request-channel connection's own bucket."""
        spec = self.settings.connection
        bucket = TokenBucket(spec, self._clock_ms()) if connection and spec is not None else None
        return Origin(ip_key(remote), bucket)

    def precheck(self, origin: Origin) -> None:
        """Before the body is read: refuse if the IP or the connection has not a single token left (charges nothing)."""
        now = self._clock_ms()
        if self.ips is not None:
            bucket = self.ips.peek(origin.ip)
            wait = 0 if bucket is None else bucket.wait_ms(1, now)
            if wait:
                raise self._refuse(IP, wait)
        if origin.connection is not None:
            wait = origin.connection.wait_ms(1, now)
            if wait:
                raise self._refuse(CONNECTION, wait)

    def charge_origin(self, origin: Origin, cost: int) -> None:
        """Take `cost` from the IP and the connection buckets, both or neither (the IP's refusal first)."""
        now = self._clock_ms()
        ip = None
        if self.ips is not None:
            self._too_costly(IP, cost, self.ips.spec)
            ip = self.ips.get(origin.ip, now)
            wait = ip.wait_ms(cost, now)
            if wait:
                raise self._refuse(IP, wait)
        if origin.connection is not None:
            self._too_costly(CONNECTION, cost, origin.connection.spec)
            wait = origin.connection.wait_ms(cost, now)
            if wait:
                raise self._refuse(CONNECTION, wait)
            origin.connection.take(cost)
        if ip is not None:
            ip.take(cost)

    # ------------------------------------------------------------ traders

    def check_trader(self, trader: bytes, cost: int) -> None:
        """Refuse if the trader's bucket lacks `cost` now; charges nothing and creates no bucket (the trader is not
        authenticated yet)."""
        if self.traders is None:
            return
        self._too_costly(TRADER, cost, self.traders.spec)
        bucket = self.traders.peek(trader)
        wait = 0 if bucket is None else bucket.wait_ms(cost, self._clock_ms())
        if wait:
            raise self._refuse(TRADER, wait)

    def charge_trader(self, trader: bytes, cost: int) -> None:
        """Take `cost` from the trader's bucket (after its signature verified)."""
        if self.traders is None:
            return
        self._too_costly(TRADER, cost, self.traders.spec)
        now = self._clock_ms()
        bucket = self.traders.get(trader, now)
        wait = bucket.wait_ms(cost, now)
        if wait:
            raise self._refuse(TRADER, wait)
        bucket.take(cost)

    # ------------------------------------------------------------ reads

    def charge_read(self, remote: str | None) -> None:
        """One read (a GET of exchange data, or opening a WebSocket) from `remote`."""
        if self.reads is None:
            return
        now = self._clock_ms()
        bucket = self.reads.get(ip_key(remote), now)
        wait = bucket.wait_ms(1, now)
        if wait:
            raise self._refuse(READ, wait)
        bucket.take(1)
