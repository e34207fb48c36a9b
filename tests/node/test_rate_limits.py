"""Token buckets and the rate limiter, at exact boundaries, with a clock the test moves (node/rate_limits.py)."""

from __future__ import annotations

import pytest

from ddx_offchain.node.admission import Admission, AdmissionError, request_cost
from ddx_offchain.node.rate_limits import (
    BucketMap,
    BucketSpec,
    CostExceedsLimit,
    RateLimited,
    RateLimiter,
    RateLimitSettings,
    TokenBucket,
    ip_key,
)
from ddx_offchain.protocol.eip712 import Domain, address_of
from ddx_offchain.protocol.requests import PlaceOrder, market_id, sign_request, strategy_id

DOMAIN = Domain.of(31337, "0x" + "5a" * 20)
ALICE, MALLORY = b"\xa1" * 32, b"\x3a" * 32


class Clock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


# ---------------------------------------------------------------------------------------------- TokenBucket


def test_a_new_bucket_is_full_and_gives_exactly_its_capacity():
    bucket = TokenBucket(BucketSpec(capacity=3, refill_per_s=2), now_ms=0)
    assert bucket.wait_ms(3, 0) == 0
    bucket.take(3)
    assert bucket.tokens(0) == 0
    assert bucket.wait_ms(1, 0) == 500  # 2 tokens a second: one every 500 ms


def test_the_wait_is_exact_to_the_millisecond():
    bucket = TokenBucket(BucketSpec(capacity=3, refill_per_s=2), now_ms=0)
    bucket.take(3)
    assert bucket.wait_ms(1, 499) == 1
    assert bucket.wait_ms(1, 500) == 0
    assert bucket.wait_ms(3, 500) == 1000
    assert bucket.wait_ms(3, 1499) == 1
    assert bucket.wait_ms(3, 1500) == 0


def test_a_wait_that_is_not_a_whole_millisecond_rounds_up():
    bucket = TokenBucket(BucketSpec(capacity=1, refill_per_s=3), now_ms=0)  # a token every 333.3 ms
    bucket.take(1)
    assert bucket.wait_ms(1, 0) == 334
    assert bucket.wait_ms(1, 333) == 1  # 999 milli-tokens
    assert bucket.wait_ms(1, 334) == 0


def test_refill_stops_at_capacity():
    bucket = TokenBucket(BucketSpec(capacity=5, refill_per_s=1000), now_ms=0)
    bucket.take(5)
    assert bucket.tokens(10**9) == 5
    bucket.take(5)
    assert bucket.wait_ms(1, 10**9) == 1


def test_a_clock_going_back_refills_nothing_and_breaks_nothing():
    bucket = TokenBucket(BucketSpec(capacity=2, refill_per_s=1), now_ms=10_000)
    bucket.take(2)
    assert bucket.wait_ms(1, 5_000) == 1000  # measured from the latest time seen
    assert bucket.wait_ms(1, 11_000) == 0


def test_a_spec_needs_positive_sizes():
    for capacity, refill in ((0, 1), (1, 0), (-1, 1)):
        with pytest.raises(ValueError):
            BucketSpec(capacity, refill)


def test_retry_after_seconds_round_up():
    assert [RateLimited("ip", ms).retry_after_s for ms in (1, 999, 1000, 1001, 2500)] == [1, 1, 1, 2, 3]
    refusal = RateLimited("trader", 1234)
    assert refusal.reason == "rate_limited" and refusal.extra == {"bucket": "trader", "retryAfterMs": "1234"}


# ---------------------------------------------------------------------------------------------- BucketMap


def test_the_map_never_holds_more_than_its_bound_and_drops_the_least_recently_used():
    buckets = BucketMap(BucketSpec(10, 1), max_buckets=3)
    for key in "abc":
        buckets.get(key, 0).take(1)  # none is full: nothing idle to drop
    buckets.get("a", 0)  # a is now the most recently used
    buckets.get("d", 0)
    assert len(buckets) == 3 and buckets.peek("b") is None and buckets.peek("a") is not None


def test_idle_buckets_full_again_are_dropped_when_a_new_key_comes():
    spec = BucketSpec(2, 1)
    buckets = BucketMap(spec, max_buckets=100)
    buckets.get("a", 0).take(2)
    buckets.get("b", 1000).take(1)
    buckets.get("c", spec.full_after_ms - 1).take(1)
    assert len(buckets) == 3  # a is not full yet
    buckets.get("d", spec.full_after_ms)  # a is full at 2000 ms; b (full at 2000 ms too) follows it
    assert buckets.peek("a") is None and buckets.peek("b") is None and len(buckets) == 2


def test_a_dropped_bucket_is_indistinguishable_from_a_kept_one():
    spec = BucketSpec(2, 1)
    kept, dropped = TokenBucket(spec, 0), BucketMap(spec, max_buckets=1)
    kept.take(2)
    dropped.get("a", 0).take(2)
    dropped.get("b", 2000)  # a was full again: dropped
    assert dropped.get("a", 2000).tokens(2000) == kept.tokens(2000) == 2


# ---------------------------------------------------------------------------------------------- RateLimiter


def limiter(clock, refused=None, **buckets) -> RateLimiter:
    settings = RateLimitSettings(**{"trader": None, "ip": None, "connection": None, "read": None} | buckets)
    return RateLimiter(settings, clock, refused.append if refused is not None else None)


def test_the_ip_bucket_refuses_with_the_exact_wait_and_counts_the_refusal():
    clock, refused = Clock(), []
    limits = limiter(clock, refused, ip=BucketSpec(2, 4))
    origin = limits.origin("10.0.0.1")
    limits.charge_origin(origin, 2)
    with pytest.raises(RateLimited) as caught:
        limits.charge_origin(origin, 1)
    assert caught.value.bucket == "ip" and caught.value.retry_after_ms == 250 and refused == ["ip"]
    clock.now += 250
    limits.charge_origin(origin, 1)
    limits.charge_origin(limits.origin("10.0.0.2"), 2)  # another address has its own bucket


def test_the_precheck_refuses_an_empty_ip_bucket_and_charges_nothing():
    clock = Clock()
    limits = limiter(clock, ip=BucketSpec(1, 1))
    origin = limits.origin("10.0.0.1")
    limits.precheck(origin)
    limits.precheck(origin)
    assert len(limits.ips) == 0  # a precheck creates no bucket
    limits.charge_origin(origin, 1)
    with pytest.raises(RateLimited) as caught:
        limits.precheck(origin)
    assert caught.value.bucket == "ip" and caught.value.retry_after_ms == 1000


def test_ip_and_connection_are_charged_both_or_neither():
    clock = Clock()
    limits = limiter(clock, ip=BucketSpec(10, 1), connection=BucketSpec(2, 1))
    origin = limits.origin("10.0.0.1", connection=True)
    limits.charge_origin(origin, 2)
    with pytest.raises(RateLimited) as caught:
        limits.charge_origin(origin, 1)
    assert caught.value.bucket == "connection"
    assert limits.ips.peek("10.0.0.1").tokens(clock.now) == 8  # the connection's refusal took nothing from the IP
    other = limits.origin("10.0.0.1", connection=True)  # a second connection: its own bucket, the same IP's
    limits.charge_origin(other, 2)
    assert limits.ips.peek("10.0.0.1").tokens(clock.now) == 6


def test_the_trader_check_neither_charges_nor_creates_and_the_charge_does():
    clock, refused = Clock(), []
    limits = limiter(clock, refused, trader=BucketSpec(2, 1))
    trader = b"\x01" * 20
    for _ in range(5):
        limits.check_trader(trader, 2)
    assert len(limits.traders) == 0
    limits.charge_trader(trader, 2)
    with pytest.raises(RateLimited) as caught:
        limits.check_trader(trader, 1)
    assert caught.value.bucket == "trader" and caught.value.retry_after_ms == 1000 and refused == ["trader"]
    with pytest.raises(RateLimited):
        limits.charge_trader(trader, 1)


def test_a_request_costing_more_than_a_bucket_holds_is_refused_for_good():
    limits = limiter(Clock(), trader=BucketSpec(5, 1), ip=BucketSpec(3, 1))
    with pytest.raises(CostExceedsLimit) as caught:
        limits.check_trader(b"\x01" * 20, 6)
    assert caught.value.reason == "cost_exceeds_limit" and caught.value.extra["bucket"] == "trader"
    with pytest.raises(CostExceedsLimit) as caught:
        limits.charge_origin(limits.origin("10.0.0.1"), 4)
    assert caught.value.extra["bucket"] == "ip"


def test_reads_have_their_own_bucket_per_ip():
    clock = Clock()
    limits = limiter(clock, ip=BucketSpec(1, 1), read=BucketSpec(2, 10))
    limits.charge_read("10.0.0.1")
    limits.charge_read("10.0.0.1")
    with pytest.raises(RateLimited) as caught:
        limits.charge_read("10.0.0.1")
    assert caught.value.bucket == "read" and caught.value.retry_after_ms == 100
    limits.charge_origin(limits.origin("10.0.0.1"), 1)  # requests draw on the other bucket


def test_disabled_buckets_limit_nothing():
    limits = limiter(Clock())
    origin = limits.origin("10.0.0.1", connection=True)
    for _ in range(1000):
        limits.precheck(origin)
        limits.charge_origin(origin, 50)
        limits.check_trader(b"\x01" * 20, 50)
        limits.charge_trader(b"\x01" * 20, 50)
        limits.charge_read("10.0.0.1")


def test_ip_keys_group_an_ipv6_host_by_its_64_and_unwrap_mapped_ipv4():
    assert ip_key("192.0.2.7") == "192.0.2.7"
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert ip_key(None) == "unknown"


# ---------------------------------------------------------------------------------------------- admission


def order(key: bytes, nonce: int, ts: int, trader: bytes | None = None):
    request = PlaceOrder(
        trader or address_of(key), strategy_id("main"), market_id("ETHP"), 0, 0, 100, 1, False, nonce, ts
    )
    return sign_request(request, DOMAIN, key)


def test_admission_charges_the_trader_only_once_the_signature_verifies():
    clock = Clock()
    limits = limiter(clock, trader=BucketSpec(2, 1), ip=BucketSpec(100, 1))
    admission = Admission(DOMAIN, clock, rate_limiter=limits)
    alice = address_of(ALICE)
    origin = limits.origin("10.0.0.66")
    for nonce in range(1, 6):  # Mallory signs requests naming Alice: refused, and they cost Alice nothing
        with pytest.raises(AdmissionError) as caught:
            admission.admit(order(MALLORY, nonce, clock.now, trader=alice).to_json(), origin)
        assert caught.value.reason == "signer_mismatch"
    assert limits.ips.peek("10.0.0.66").tokens(clock.now) == 95  # they cost Mallory's address
    admission.admit(order(ALICE, 1, clock.now).to_json())
    admission.admit(order(ALICE, 2, clock.now).to_json())
    with pytest.raises(RateLimited) as caught:
        admission.admit(order(ALICE, 3, clock.now).to_json())
    assert caught.value.bucket == "trader"


def test_an_empty_trader_bucket_refuses_before_the_signature_is_recovered():
    clock = Clock()
    limits = limiter(clock, trader=BucketSpec(1, 1))
    admission = Admission(DOMAIN, clock, rate_limiter=limits)
    admission.admit(order(ALICE, 1, clock.now).to_json())
    doc = order(ALICE, 2, clock.now).to_json()
    doc["signature"] = "0x" + "00" * 65  # would be bad_signature_format had the signature been looked at
    with pytest.raises(RateLimited):
        admission.admit(doc)


def test_a_malformed_request_costs_its_origin_one_token():
    clock = Clock()
    limits = limiter(clock, ip=BucketSpec(2, 1))
    admission = Admission(DOMAIN, clock, rate_limiter=limits)
    origin = limits.origin("10.0.0.1")
    with pytest.raises(AdmissionError) as caught:
        admission.admit({"type": "Nope"}, origin)
    assert caught.value.reason != "rate_limited"
    assert limits.ips.peek("10.0.0.1").tokens(clock.now) == 1


def test_a_request_costs_its_number_of_actions():
    class Batch:
        actions = (1, 2, 3)

    class Empty:
        actions = ()

    assert request_cost(Batch()) == 3
    assert request_cost(Empty()) == 1
    assert request_cost(object()) == 1


# ---------------------------------------------------------------- client address behind trusted proxies

def test_client_address_believes_x_forwarded_for_only_from_a_trusted_proxy():
    from ddx_offchain.node.rate_limits import client_address, parse_trusted_proxies

    trusted = parse_trusted_proxies(["10.0.0.0/8", "127.0.0.1", "fd00::/8"])
    # no trusted proxies configured, or the peer is not one: the header is the client's own words, ignored
    assert client_address("203.0.113.7", "198.51.100.1", ()) == "203.0.113.7"
    assert client_address("203.0.113.7", "198.51.100.1", trusted) == "203.0.113.7"
    # a trusted peer: the right-most hop it does not itself trust; what the client wrote left of that is ignored
    assert client_address("10.1.2.3", "198.51.100.1", trusted) == "198.51.100.1"
    assert client_address("10.1.2.3", "6.6.6.6, 198.51.100.1", trusted) == "198.51.100.1"
    assert client_address("10.1.2.3", "6.6.6.6, 198.51.100.1, 10.9.9.9, 127.0.0.1", trusted) == "198.51.100.1"
    assert client_address("::ffff:127.0.0.1", " 198.51.100.2 ", trusted) == "198.51.100.2"  # IPv4-mapped peer
    assert client_address("fd00::1", "2001:db8::5", trusted) == "2001:db8::5"
    # only trusted hops: the first one; no header or a nonsense hop before an untrusted one: the peer itself
    assert client_address("10.1.2.3", "10.0.0.9, 127.0.0.1", trusted) == "10.0.0.9"
    assert client_address("10.1.2.3", None, trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", "198.51.100.1, unknown", trusted) == "10.1.2.3"
    assert client_address(None, "198.51.100.1", trusted) is None


def test_trusted_proxies_parse_addresses_and_networks_or_name_the_bad_one():
    import ipaddress

    from ddx_offchain.node.rate_limits import parse_trusted_proxies

    assert parse_trusted_proxies(["10.0.0.0/8", "127.0.0.1", "fd00::/8"]) == (
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("fd00::/8"))
    with pytest.raises(ValueError, match="'proxy.local'"):
        parse_trusted_proxies(["10.0.0.0/8", "proxy.local"])


def test_signatures_checked_on_worker_threads_give_the_same_results_errors_and_charges():
    """Admission with a SignatureVerifier (signatures checked in batches off the loop) against the same checks
    on the loop: the same SignedRequests, the same refusals, the same rate-limit charges."""
    import asyncio

    from ddx_offchain.node.admission import SignatureVerifier

    alice = address_of(ALICE)
    docs = [order(ALICE, nonce, 1_000_000).to_json() for nonce in range(1, 41)]
    docs.append(order(MALLORY, 41, 1_000_000, trader=alice).to_json())  # signer_mismatch
    bad = order(ALICE, 42, 1_000_000).to_json()
    bad["signature"] = bad["signature"][:-2] + ("1c" if bad["signature"].endswith("1b") else "1b")  # other signer
    docs.append(bad)
    short = order(ALICE, 43, 1_000_000).to_json()
    short["signature"] = "0x" + "00" * 65
    docs.append(short)  # bad_signature_format (found when the signature is checked)

    def outcomes(results):
        return [(r.reason, r.detail) if isinstance(r, AdmissionError) else (r.signer, r.request_hash) for r in results]

    def run_on_loop():
        clock = Clock()
        limits = limiter(clock, trader=BucketSpec(1000, 1), ip=BucketSpec(1000, 1))
        admission = Admission(DOMAIN, clock, rate_limiter=limits)
        origin = limits.origin("10.0.0.9")
        results = []
        for doc in docs:
            try:
                results.append(admission.admit(doc, origin))
            except AdmissionError as exc:
                results.append(exc)
        return outcomes(results), limits.ips.peek("10.0.0.9").tokens(clock.now), limits.traders.peek(alice).tokens(clock.now)

    async def run_on_threads():
        clock = Clock()
        limits = limiter(clock, trader=BucketSpec(1000, 1), ip=BucketSpec(1000, 1))
        verifier = SignatureVerifier(2)
        admission = Admission(DOMAIN, clock, rate_limiter=limits, verifier=verifier)
        origin = limits.origin("10.0.0.9")
        try:
            results = await asyncio.gather(*(admission.admit_async(doc, origin) for doc in docs), return_exceptions=True)
        finally:
            verifier.close()
        assert verifier.batches < len(docs)  # fed in batches, not one job per request
        return outcomes(results), limits.ips.peek("10.0.0.9").tokens(clock.now), limits.traders.peek(alice).tokens(clock.now)

    expected = run_on_loop()
    reasons = [o[0] for o in expected[0] if isinstance(o[0], str)]
    assert reasons == ["signer_mismatch", "signer_mismatch", "bad_signature_format"]
    assert asyncio.run(run_on_threads()) == expected
    assert expected[2] == 1000 - 40  # only the 40 good ones charged Alice
