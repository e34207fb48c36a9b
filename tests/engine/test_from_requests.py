"""Signed protocol requests map onto engine commands field by field; the request hash is the order id."""

import pytest
from engine_helpers import ETHP, USDC, Driver, accepted, of_type, trader, usd

from ddx_offchain.engine.commands import BUY, SELL, from_request
from ddx_offchain.engine.updates import Fill
from ddx_offchain.protocol import requests as rq

A, B = trader(1), trader(2)
MAIN = rq.strategy_id("main")


def test_every_request_type_maps_and_executes():
    d = Driver()
    d.deposit(A, usd(10_000))
    d.deposit(B, usd(10_000))
    d.price(usd(2000))
    h = lambda n: n.to_bytes(32, "big")  # noqa: E731 - stands in for EIP-712 request hashes
    place = rq.PlaceOrder(A, MAIN, ETHP, SELL, 0, usd(2000), 2_000, False, 1, 1)
    assert accepted(d.apply(from_request(place, h(101))))
    modify = rq.ModifyOrder(A, MAIN, ETHP, h(101), usd(2001), 3_000, 2, 1)
    assert accepted(d.apply(from_request(modify, h(102))))
    take = rq.PlaceOrder(B, MAIN, ETHP, BUY, 1, usd(2001), 1_000, False, 1, 1)
    ups = d.apply(from_request(take, h(103)))
    assert of_type(ups, Fill)[0].maker_order == h(102)
    cancel = rq.CancelOrder(A, MAIN, ETHP, h(102), 3, 1)
    assert accepted(d.apply(from_request(cancel, h(104))))
    assert accepted(d.apply(from_request(rq.CancelAll(A, MAIN, b"\x00" * 32, 4, 1), h(105))))
    assert accepted(d.apply(from_request(rq.WithdrawIntent(A, MAIN, USDC, usd(1), 5, 1), h(106))))
    assert accepted(d.apply(from_request(rq.CreateStrategy(A, rq.strategy_id("alt"), 6, 1), h(107))))
    with pytest.raises(TypeError):
        from_request(object(), h(1))


@pytest.mark.parametrize("request_type", list(rq.REQUEST_TYPES.values()), ids=lambda c: c.PRIMARY_TYPE)
def test_each_request_type_is_declared_once_and_the_rest_follows(request_type):
    """The annotated dataclass is the declaration: the EIP-712 fields and the engine command derive from it."""
    from dataclasses import fields

    from ddx_offchain.engine.commands import _ENGINE_ABI, COMMAND_OF_REQUEST

    attrs = [f.name for f in fields(request_type)]
    assert [attr for attr, _, _ in request_type.FIELDS] == attrs
    assert [name for _, name, _ in request_type.FIELDS] == [rq.eip712_name(a) for a in attrs]
    assert request_type.TYPE_STRING.startswith(request_type.PRIMARY_TYPE + "(address trader,bytes32 strategy,")
    command = COMMAND_OF_REQUEST[request_type]
    kept = [(attr, abi) for attr, _, abi in request_type.FIELDS if attr not in ("nonce", "timestamp")]
    assert command.__struct_fields__ == ("request_id", *(attr for attr, _ in kept))
    assert command.SPEC == ("bytes32", *(_ENGINE_ABI.get(abi, abi) for _, abi in kept)) and command.__name__ == request_type.PRIMARY_TYPE
