"""Batches (one signed request, many actions, each with its own verdict) and agent approvals in the engine."""

from engine_helpers import ETHP, USDC, Driver, accepted, items_except_cursors, of_type, reason, trader, usd

from ddx_offchain.engine.commands import (
    BUY,
    LIMIT,
    MAIN_STRATEGY,
    SELL,
    ZERO_ID,
    ApproveAgent,
    Batch,
    BatchAction,
    RevokeAgent,
    from_request,
)
from ddx_offchain.engine.engine import MAX_AGENTS, Engine
from ddx_offchain.engine.reasons import CancelReason, Reject
from ddx_offchain.engine.updates import Accepted, AgentUpdate, Fill, OrderUpdate, Rejected
from ddx_offchain.protocol import requests as rq

A, B, AGENT, C_TAKER = trader(1), trader(2), trader(9), trader(3)


def place(price, size, side=SELL, order_type=LIMIT, market=ETHP, reduce_only=False, cid=ZERO_ID):
    return BatchAction(0, market, side, order_type, price, size, reduce_only, ZERO_ID, cid)


def cancel(order_id, market=ETHP):
    return BatchAction(1, market, 0, 0, 0, 0, False, order_id)


def modify(order_id, price, size, market=ETHP):
    return BatchAction(2, market, 0, 0, price, size, False, order_id)


def funded() -> Driver:
    d = Driver()
    d.deposit(A, usd(100_000))
    d.deposit(B, usd(100_000))
    d.deposit(C_TAKER, usd(100_000))
    d.price(usd(2000))
    return d


def test_each_action_gets_its_own_verdict_and_id_and_later_actions_see_earlier_ones():
    d = funded()
    rid = d.rid()
    first, second = rq.batch_action_id(rid, 0), rq.batch_action_id(rid, 1)
    ups = d.apply(Batch(rid, A, MAIN_STRATEGY, (
        place(usd(2010), 1_000_000),
        place(usd(2011), 7),  # not a multiple of the lot: rejected alone
        modify(first, usd(2012), 2_000_000),  # modifies the order the first action placed
        cancel(b"\x77" * 32),  # no such order
        place(usd(2013), 1_000_000),
    )))
    verdicts = [u for u in ups if isinstance(u, (Accepted, Rejected))]
    assert [type(v).__name__ for v in verdicts] == ["Accepted", "Accepted", "Rejected", "Accepted", "Rejected", "Accepted"]
    assert verdicts[0].request_id == rid and verdicts[0].command == "Batch"
    assert [v.request_id for v in verdicts[1:]] == [rq.batch_action_id(rid, i) for i in range(5)]
    assert verdicts[2].reason == Reject.BAD_SIZE and verdicts[4].reason == Reject.UNKNOWN_ORDER
    assert second not in d.engine.orders
    modified = d.engine.orders[rq.batch_action_id(rid, 2)]
    assert (modified.price, modified.remaining) == (usd(2012), 2_000_000)
    assert first not in d.engine.orders and rq.batch_action_id(rid, 4) in d.engine.orders
    assert of_type(ups, OrderUpdate)[1].reason == CancelReason.MODIFIED


def test_a_batch_applies_exactly_as_its_actions_would_one_by_one():
    """Same state and the same effects (less the batch's own Accepted) as the single commands under the action ids."""
    batched, single = funded(), funded()
    actions = (place(usd(2001), 1_000_000), place(usd(1990), 2_000_000, side=BUY), place(usd(1999), 500_000, side=BUY))
    rid = b"\xbb" * 32
    taker = (BatchAction(0, ETHP, BUY, 1, usd(2001), 1_000_000, False, ZERO_ID),)
    batched.apply(Batch(rid, A, MAIN_STRATEGY, actions))
    batched_fill = batched.apply(Batch(b"\xcc" * 32, B, MAIN_STRATEGY, taker))
    from ddx_offchain.engine.commands import action_command

    c = Batch(rid, A, MAIN_STRATEGY, actions)
    for i, action in enumerate(actions):
        single.apply(action_command(c, i, action))
    single_fill = single.apply(action_command(Batch(b"\xcc" * 32, B, MAIN_STRATEGY, taker), 0, taker[0]))
    assert items_except_cursors(batched.engine) == items_except_cursors(single.engine)
    assert [type(u) for u in batched_fill[1:]] == [type(u) for u in single_fill]
    assert of_type(batched_fill, Fill)[0].taker_order == rq.batch_action_id(b"\xcc" * 32, 0)


def test_a_batch_without_actions_or_with_too_many_is_rejected_and_changes_nothing():
    d = funded()
    before = items_except_cursors(d.engine)
    assert reason(d.apply(Batch(d.rid(), A, MAIN_STRATEGY, ()))) == Reject.BAD_BATCH
    too_many = tuple(place(usd(2100 + i), 1_000_000) for i in range(rq.MAX_BATCH_ACTIONS + 1))
    assert reason(d.apply(Batch(d.rid(), A, MAIN_STRATEGY, too_many))) == Reject.BAD_BATCH
    assert items_except_cursors(d.engine) == before


def test_an_unknown_action_kind_is_rejected_alone():
    d = funded()
    rid = d.rid()
    ups = d.apply(Batch(rid, A, MAIN_STRATEGY, (BatchAction(7, ETHP, 0, 0, 0, 0, False, ZERO_ID), place(usd(2050), 1_000_000))))
    assert accepted(ups)
    assert ups[1].reason == Reject.MALFORMED and ups[1].request_id == rq.batch_action_id(rid, 0)
    assert rq.batch_action_id(rid, 1) in d.engine.orders


def test_the_batch_request_maps_onto_the_batch_command():
    request = rq.Batch(A, MAIN_STRATEGY, (rq.Action(1, ETHP, 0, 0, 0, 0, False, b"\x01" * 32),), 5, 6)
    command = from_request(request, b"\x02" * 32)
    assert command == Batch(b"\x02" * 32, A, MAIN_STRATEGY, (cancel(b"\x01" * 32),))


# ---------------------------------------------------------------------------------------------------- agents


def approve(d, agent=AGENT, expiry=10_000, strategy=MAIN_STRATEGY, who=A, scope=1):
    return d.apply(ApproveAgent(d.rid(), who, strategy, agent, scope, expiry))


def test_an_approval_is_state_with_its_start_and_expiry_and_a_revocation_removes_it():
    d = funded()
    d.advance(1_000)
    root_before = d.engine.state_root()
    ups = approve(d, expiry=5_000)
    assert accepted(ups)
    (update,) = of_type(ups, AgentUpdate)
    assert (update.valid_from, update.expiry, update.approved) == (1_000, 5_000, True)
    assert d.engine.state_root() != root_before
    assert d.engine.agent_problem(A, AGENT, MAIN_STRATEGY, 1_000) is None
    assert d.engine.agent_problem(A, AGENT, MAIN_STRATEGY, 999) == "agent_request_predates_approval"
    assert d.engine.agent_problem(A, AGENT, b"other".ljust(32, b"\x00"), 2_000) == "signer_mismatch"
    assert d.engine.agent_problem(B, AGENT, MAIN_STRATEGY, 2_000) == "signer_mismatch"
    assert Engine.restore(d.engine.snapshot()).agent_problem(A, AGENT, MAIN_STRATEGY, 1_000) is None
    d.advance(4_000)  # time 5_000: expired
    assert d.engine.agent_problem(A, AGENT, MAIN_STRATEGY, 5_000) == "agent_expired"
    revoked = d.apply(RevokeAgent(d.rid(), A, MAIN_STRATEGY, AGENT))
    assert accepted(revoked) and of_type(revoked, AgentUpdate)[0].approved is False
    assert d.engine.agent_problem(A, AGENT, MAIN_STRATEGY, 5_000) == "signer_mismatch"
    assert reason(d.apply(RevokeAgent(d.rid(), A, MAIN_STRATEGY, AGENT))) == Reject.UNKNOWN_AGENT
    assert not [k for k, _ in d.engine.all_items() if k[0] == 0x0E]  # no AGENT item left in the tree


def test_an_approval_for_every_strategy_covers_each_and_a_re_approval_restarts_it():
    d = funded()
    d.advance(1_000)
    approve(d, strategy=ZERO_ID)
    assert d.engine.agent_problem(A, AGENT, b"any".ljust(32, b"\x00"), 1_000) is None
    d.advance(2_000)
    approve(d, strategy=ZERO_ID, expiry=20_000)  # re-approved at 3_000
    assert d.engine.agent_problem(A, AGENT, MAIN_STRATEGY, 2_500) == "agent_request_predates_approval"
    assert d.engine.agent_problem(A, AGENT, MAIN_STRATEGY, 3_000) is None


def test_approval_rules_each_reject_and_change_nothing():
    d = funded()
    d.advance(1_000)
    before = items_except_cursors(d.engine)
    assert reason(approve(d, agent=A)) == Reject.BAD_AGENT  # the trader itself
    assert reason(approve(d, agent=b"\x00" * 20)) == Reject.BAD_AGENT
    assert reason(approve(d, scope=2)) == Reject.BAD_AGENT
    assert reason(approve(d, expiry=1_000)) == Reject.BAD_AGENT  # not after the sequenced time
    assert items_except_cursors(d.engine) == before


def test_at_most_max_agents_live_approvals_and_expired_ones_make_room():
    d = funded()
    d.advance(1_000)
    for i in range(MAX_AGENTS):
        assert accepted(approve(d, agent=trader(100 + i), expiry=2_000 if i == 0 else 50_000))
    assert reason(approve(d, agent=trader(200))) == Reject.TOO_MANY_AGENTS
    assert accepted(approve(d, agent=trader(101), expiry=60_000))  # re-approving a held one is always possible
    d.advance(1_000)  # the first approval expires at 2_000
    ups = approve(d, agent=trader(200), expiry=60_000)
    assert accepted(ups)
    ended = [u for u in of_type(ups, AgentUpdate) if not u.approved]
    assert [u.agent for u in ended] == [trader(100)]
    assert len(d.engine.agents_of[A]) == MAX_AGENTS


def test_a_contract_wallet_approves_its_agent_from_l1_as_a_forced_request():
    d = funded()
    d.advance(1_000)
    wallet = trader(50)
    ups = d.force(rq.ApproveAgent(wallet, MAIN_STRATEGY, AGENT, 1, 9_000, 0, 0))
    assert accepted(ups) and of_type(ups, AgentUpdate)[0].trader == wallet
    assert d.engine.agent_problem(wallet, AGENT, MAIN_STRATEGY, 1_000) is None
    d.force(rq.RevokeAgent(wallet, MAIN_STRATEGY, AGENT, 0, 0))
    assert d.engine.agent_problem(wallet, AGENT, MAIN_STRATEGY, 1_000) == "signer_mismatch"


# ---------------------------------------------------------------------------------------------------- fill-or-kill


def test_fill_or_kill_fills_exactly_the_available_size_and_otherwise_changes_nothing():
    from ddx_offchain.engine.commands import FILL_OR_KILL

    d = funded()
    d.order(A, SELL, usd(2000), 600_000)
    d.order(A, SELL, usd(2001), 400_000)
    before = items_except_cursors(d.engine)
    assert reason(d.order(B, BUY, usd(2001), 1_001_000, FILL_OR_KILL)) == Reject.FILL_OR_KILL_NOT_FILLED
    assert reason(d.order(B, BUY, usd(2000), 700_000, FILL_OR_KILL)) == Reject.FILL_OR_KILL_NOT_FILLED  # limit
    assert reason(d.order(A, BUY, usd(2001), 100_000, FILL_OR_KILL)) == Reject.FILL_OR_KILL_NOT_FILLED  # own orders
    assert items_except_cursors(d.engine) == before
    ups = d.order(B, BUY, usd(2001), 1_000_000, FILL_OR_KILL)  # exactly what rests at or under the limit
    assert accepted(ups) and sum(f.size for f in of_type(ups, Fill)) == 1_000_000
    assert of_type(ups, OrderUpdate)[-1].status == 1  # FILLED
    assert not d.engine.markets[ETHP].book.ask_prices


# ---------------------------------------------------------------------------------------------------- scheduled cancels


def schedule(d, when, who=A, strategy=MAIN_STRATEGY, market=ZERO_ID):
    from ddx_offchain.engine.commands import ScheduleCancel

    return d.apply(ScheduleCancel(d.rid(), who, strategy, market, when))


def test_a_scheduled_cancel_fires_at_its_time_exactly_and_only_on_what_it_names():
    from ddx_offchain.engine.updates import CancelScheduled

    d = funded()
    d.advance(1_000)
    d.order(A, SELL, usd(2100), 1_000_000)
    d.order(A, BUY, usd(1900), 1_000_000)
    d.order(B, SELL, usd(2200), 1_000_000)
    assert accepted(schedule(d, 5_000))
    d.advance(3_999)  # time 4_999: not yet
    assert len([o for o in d.engine.orders.values() if o.account.trader == A]) == 2
    ups = d.advance(1)  # time 5_000: fires
    fired = of_type(ups, CancelScheduled)
    assert [(u.status, u.time) for u in fired] == [(2, 5_000)]
    cancelled = [u for u in of_type(ups, OrderUpdate) if u.reason == CancelReason.SCHEDULED]
    assert len(cancelled) == 2 and all(u.trader == A for u in cancelled)
    assert [o.account.trader for o in d.engine.orders.values()] == [B]
    assert not d.engine.schedules and not [k for k, _ in d.engine.all_items() if k[0] == 0x0F]


def test_renewing_moves_the_switch_clearing_removes_it_and_a_market_scope_spares_the_rest():
    d = funded()
    d.advance(1_000)
    d.order(A, SELL, usd(2100), 1_000_000)
    schedule(d, 3_000)
    schedule(d, 6_000)  # renewed before it fired
    d.advance(3_000)  # 4_000: the old time has passed, the switch has not fired
    assert len(d.engine.orders) == 1
    schedule(d, 0)  # cleared
    d.advance(10_000)
    assert len(d.engine.orders) == 1
    schedule(d, 20_000, market=b"BTCP".ljust(32, b"\x00"))  # another market: this order survives it
    d.advance(10_000)
    assert len(d.engine.orders) == 1
    assert Engine.restore(d.engine.snapshot()).state_root() == d.engine.state_root()


def test_schedule_rules_reject_and_change_nothing_and_a_snapshot_keeps_the_switch():
    d = funded()
    d.advance(1_000)
    d.order(A, SELL, usd(2100), 1_000_000)
    before = items_except_cursors(d.engine)
    assert reason(schedule(d, 1_000)) == Reject.BAD_SCHEDULE  # not after the sequenced time
    assert items_except_cursors(d.engine) == before
    from ddx_offchain.engine.engine import MAX_SCHEDULES

    for i in range(MAX_SCHEDULES):
        assert accepted(schedule(d, 9_000, strategy=bytes([i + 1]) * 32))
    assert reason(schedule(d, 9_000)) == Reject.TOO_MANY_SCHEDULES
    assert accepted(schedule(d, 9_500, strategy=bytes([1]) * 32))  # moving a held one is always possible
    restored = Driver(Engine.restore(d.engine.snapshot()))
    restored.time = d.time
    assert accepted(schedule(restored, 0, strategy=bytes([1]) * 32))  # cleared: room for one more
    assert accepted(schedule(restored, 9_000))  # main strategy, every market
    restored.advance(8_000)  # time 9_000: the restored engine fires the switches it holds
    assert not [o for o in restored.engine.orders.values() if o.account.trader == A]


# ---------------------------------------------------------------------------------------------------- client ids, expiry


def test_client_order_ids_are_unique_among_a_strategys_open_orders_and_follow_a_modify():
    from ddx_offchain.engine.commands import PlaceOrder

    d = funded()
    cid = b"my-order-1".ljust(32, b"\x00")
    first = d.apply(PlaceOrder(d.rid(), A, MAIN_STRATEGY, ETHP, SELL, LIMIT, usd(2100), 1_000_000, False, cid))
    (opened,) = of_type(first, OrderUpdate)
    assert opened.client_order_id == cid
    order = d.engine.order_by_client_id(A, MAIN_STRATEGY, cid)
    assert order.id == opened.order_id
    again = d.apply(PlaceOrder(d.rid(), A, MAIN_STRATEGY, ETHP, SELL, LIMIT, usd(2101), 1_000_000, False, cid))
    assert reason(again) == Reject.DUPLICATE_CLIENT_ORDER_ID
    # another trader, or another strategy of the same trader, may use the same id
    assert accepted(d.apply(PlaceOrder(d.rid(), B, MAIN_STRATEGY, ETHP, BUY, LIMIT, usd(1800), 1_000_000, False, cid)))
    modified = d.modify(A, order.id, usd(2105), 2_000_000)
    assert accepted(modified)
    new = d.engine.order_by_client_id(A, MAIN_STRATEGY, cid)
    assert new.id != order.id and new.price == usd(2105)
    assert all(u.client_order_id == cid for u in of_type(modified, OrderUpdate))  # the cancelled old one too
    taker = d.order(B, BUY, usd(2105), 2_000_000, 1)  # fills it: the id is free again
    maker_update = of_type(taker, OrderUpdate)[0]
    assert (maker_update.trader, maker_update.status, maker_update.client_order_id) == (A, 1, cid)
    assert d.engine.order_by_client_id(A, MAIN_STRATEGY, cid) is None
    assert accepted(d.apply(PlaceOrder(d.rid(), A, MAIN_STRATEGY, ETHP, SELL, LIMIT, usd(2110), 1_000_000, False, cid)))
    restored = Engine.restore(d.engine.snapshot())
    assert restored.order_by_client_id(A, MAIN_STRATEGY, cid).price == usd(2110)


def test_good_till_time_orders_expire_exactly_at_their_time_and_bad_expiries_change_nothing():
    from ddx_offchain.engine.commands import LIMIT_IOC as IOC
    from ddx_offchain.engine.commands import PlaceOrder

    d = funded()
    d.advance(1_000)
    before = items_except_cursors(d.engine)
    bad = [
        PlaceOrder(d.rid(), A, MAIN_STRATEGY, ETHP, SELL, LIMIT, usd(2100), 1_000_000, False, ZERO_ID, 1_000),
        PlaceOrder(d.rid(), A, MAIN_STRATEGY, ETHP, SELL, IOC, usd(2100), 1_000_000, False, ZERO_ID, 9_000),
    ]
    for command in bad:
        assert reason(d.apply(command)) == Reject.BAD_EXPIRY
    assert items_except_cursors(d.engine) == before
    gtt = d.apply(PlaceOrder(d.rid(), A, MAIN_STRATEGY, ETHP, SELL, LIMIT, usd(2100), 1_000_000, False, ZERO_ID, 5_000))
    order_id = of_type(gtt, OrderUpdate)[0].order_id
    snapshot = d.engine.snapshot()
    d.advance(3_999)
    assert order_id in d.engine.orders
    ups = d.advance(1)  # 5_000
    (gone,) = of_type(ups, OrderUpdate)
    assert (gone.order_id, gone.reason) == (order_id, CancelReason.EXPIRED)
    restored = Driver(Engine.restore(snapshot))
    restored.time = 1_000
    restored.advance(4_000)
    assert order_id not in restored.engine.orders  # the expiry survives a snapshot


# ---------------------------------------------------------------------------------------------------- transfers


def test_a_transfer_moves_exactly_the_free_collateral_between_existing_strategies():
    from ddx_offchain.engine.commands import CreateStrategy, Transfer
    from ddx_offchain.engine.updates import StrategyUpdate, Transferred

    d = funded()
    hedge = b"hedge".ljust(32, b"\x00")
    assert reason(d.apply(Transfer(d.rid(), A, MAIN_STRATEGY, hedge, USDC, usd(1)))) == Reject.UNKNOWN_STRATEGY
    d.apply(CreateStrategy(d.rid(), A, hedge))
    d.order(A, BUY, usd(1990), 10_000_000)  # margin held by an open order
    a = d.engine.accounts[A + MAIN_STRATEGY + USDC]
    free = d.engine._free_collateral(a)
    assert 0 < free < a.collateral
    before = items_except_cursors(d.engine)
    assert reason(d.apply(Transfer(d.rid(), A, MAIN_STRATEGY, hedge, USDC, free + 1))) == \
        Reject.INSUFFICIENT_FREE_COLLATERAL
    assert items_except_cursors(d.engine) == before
    ups = d.apply(Transfer(d.rid(), A, MAIN_STRATEGY, hedge, USDC, free))
    assert accepted(ups)
    (moved,) = of_type(ups, Transferred)
    assert (moved.from_strategy, moved.to_strategy, moved.amount) == (MAIN_STRATEGY, hedge, free)
    assert [u.collateral for u in of_type(ups, StrategyUpdate)] == [a.collateral, free]
    assert d.engine.ledger_imbalance() == {USDC: 0}
    assert reason(d.apply(Transfer(d.rid(), A, MAIN_STRATEGY, hedge, b"\x01" * 20, 1))) == Reject.UNKNOWN_TOKEN


# ---------------------------------------------------------------------------------------------------- triggers


def trigger(d, who, side, direction, trigger_price, size, order_type=3, price=0, attached=False, group=ZERO_ID,
            reduce_only=None, cid=ZERO_ID):
    from ddx_offchain.engine.commands import PlaceTrigger

    rid = d.rid()
    ups = d.apply(PlaceTrigger(rid, who, MAIN_STRATEGY, ETHP, side, direction, trigger_price, order_type, price, size,
                               attached if reduce_only is None else reduce_only, attached, group, cid))
    return rid, ups


def test_a_stop_fires_exactly_when_the_mark_reaches_its_price_and_becomes_its_order():
    from ddx_offchain.engine.updates import TriggerUpdate

    d = funded()
    d.order(B, BUY, usd(1900), 5_000_000)  # the bid a stop-market sell will hit (the mark stays the index)
    tid, ups = trigger(d, A, SELL, 1, usd(1950), 1_000_000)  # falls to 1,950: sell at market
    assert accepted(ups) and of_type(ups, TriggerUpdate)[0].status == 0
    assert not of_type(d.price(usd(1951)), TriggerUpdate)  # one tick above: nothing
    fired = d.price(usd(1950))
    statuses = [u.status for u in of_type(fired, TriggerUpdate)]
    assert statuses == [1]
    verdicts = [u for u in fired if isinstance(u, (Accepted, Rejected))]
    assert [(type(v).__name__, v.request_id) for v in verdicts] == [("Accepted", fired[0].request_id),
                                                                    ("Accepted", tid)]
    fill = of_type(fired, Fill)[0]
    assert (fill.taker_order, fill.size, fill.price) == (tid, 1_000_000, usd(1900))
    assert tid not in d.engine.triggers and d.engine.state_root()


def test_trigger_rules_reject_and_change_nothing():
    d = funded()
    before = items_except_cursors(d.engine)
    assert reason(trigger(d, A, SELL, 1, usd(2000), 1_000_000)[1]) == Reject.TRIGGER_ALREADY_REACHED  # mark is 2,000
    assert reason(trigger(d, A, BUY, 0, usd(1999), 1_000_000)[1]) == Reject.TRIGGER_ALREADY_REACHED
    assert reason(trigger(d, A, SELL, 1, usd(1950) + 1, 1_000_000)[1]) == Reject.BAD_PRICE  # off the tick
    assert reason(trigger(d, A, SELL, 1, usd(1950), 0, attached=True)[1]) == Reject.NO_POSITION_TO_ATTACH
    assert reason(trigger(d, A, SELL, 1, usd(1950), 0)[1]) == Reject.BAD_SIZE
    assert items_except_cursors(d.engine) == before


def test_take_profit_and_stop_loss_on_a_position_cancel_each_other_and_go_when_the_position_closes():
    from ddx_offchain.engine.updates import TriggerUpdate

    d = funded()
    d.order(B, SELL, usd(2000), 2_000_000)
    d.order(A, BUY, usd(2000), 2_000_000, 1)  # A long 2
    group = b"tpsl".ljust(32, b"\x00")
    tp, _ = trigger(d, A, SELL, 0, usd(2100), 0, order_type=1, price=usd(2090), attached=True, group=group)
    sl, _ = trigger(d, A, SELL, 1, usd(1900), 0, attached=True, group=group)
    assert {tp, sl} <= set(d.engine.triggers)
    d.order(B, BUY, usd(2090), 3_000_000)  # a bid the take-profit can sell into (mark: mid capped, stays near index)
    ups = d.price(usd(2100))
    updates = [(u.trigger_id, u.status, u.reason) for u in of_type(ups, TriggerUpdate)]
    assert updates == [(tp, 1, 0), (sl, 2, CancelReason.GROUP_FIRED)]
    assert sum(f.size for f in of_type(ups, Fill)) == 2_000_000  # the whole position, at fire time
    assert not d.engine.accounts[A + MAIN_STRATEGY + USDC].positions[ETHP].size
    # a new position with an attached stop, closed by a plain order: the stop goes with it
    d.order(B, SELL, usd(2100), 1_000_000)
    d.order(A, BUY, usd(2100), 1_000_000, 1)
    stop, _ = trigger(d, A, SELL, 1, usd(1800), 0, attached=True)
    d.order(B, BUY, usd(2099), 1_000_000)
    closing = d.order(A, SELL, usd(2099), 1_000_000, 1)
    assert [(u.trigger_id, u.status, u.reason) for u in of_type(closing, TriggerUpdate)] == \
        [(stop, 2, CancelReason.POSITION_CLOSED)]


def test_triggers_are_cancelled_by_id_and_by_cancel_all_survive_snapshots_and_fail_margin_at_fire_time():
    from ddx_offchain.engine.commands import CancelOrder
    from ddx_offchain.engine.updates import TriggerUpdate

    d = funded()
    tid, _ = trigger(d, A, BUY, 0, usd(2050), 1_000_000)
    assert accepted(d.apply(CancelOrder(d.rid(), A, MAIN_STRATEGY, ETHP, tid)))
    assert tid not in d.engine.triggers
    t2, _ = trigger(d, A, BUY, 0, usd(2050), 1_000_000)
    cancelled = d.cancel_all(A)
    assert [(u.trigger_id, u.status, u.reason) for u in of_type(cancelled, TriggerUpdate)] == [(t2, 2, CancelReason.USER)]
    huge, _ = trigger(d, A, BUY, 0, usd(2050), 900_000_000, order_type=0, price=usd(2050))  # far beyond A's margin
    kept, _ = trigger(d, A, BUY, 0, usd(2060), 1_000_000, order_type=0, price=usd(2060))
    restored = Driver(Engine.restore(d.engine.snapshot()))
    assert restored.engine.state_root() == d.engine.state_root()
    ups = restored.price(usd(2050))
    fired = of_type(ups, TriggerUpdate)
    assert [(u.trigger_id, u.status) for u in fired] == [(huge, 1)]
    rejected = [u for u in ups if isinstance(u, Rejected)]
    assert [(r.request_id, r.reason) for r in rejected] == [(huge, Reject.INSUFFICIENT_MARGIN)]
    assert kept in restored.engine.triggers
    ups = restored.price(usd(2060))
    assert kept in restored.engine.orders  # fired: a resting limit bid under its trigger's id


def test_a_strategy_holds_at_most_max_open_orders_triggers():
    d = funded()
    limit = d.engine.max_open_orders
    for i in range(limit):
        assert accepted(trigger(d, A, BUY, 0, usd(2100) + i * 10_000, 1_000)[1])
    assert reason(trigger(d, A, BUY, 0, usd(2500), 1_000)[1]) == Reject.TOO_MANY_TRIGGERS


# ---------------------------------------------------------------------------------------------------- TWAP


def twap(d, who, side, size, duration, interval, limit_price=0, reduce_only=False):
    from ddx_offchain.engine.commands import PlaceTwap

    rid = d.rid()
    return rid, d.apply(PlaceTwap(rid, who, MAIN_STRATEGY, ETHP, side, size, duration, interval, limit_price,
                                  reduce_only))


def test_a_twap_slices_its_size_over_sequenced_time_and_catches_up_unfilled_slices():
    from ddx_offchain.engine.twap import slice_id
    from ddx_offchain.engine.updates import TwapUpdate

    d = funded()
    d.order(B, SELL, usd(2010), 250_000)  # enough for the first slice only
    tid, ups = twap(d, A, BUY, 1_000_000, 4_000, 1_000, limit_price=usd(2020))  # 4 slices of 0.25, 1 s apart
    statuses = [(u.status, u.slices_done) for u in of_type(ups, TwapUpdate)]
    assert statuses == [(0, 0), (1, 1)]  # placed; slice 0 runs at once (one slice done)
    assert of_type(ups, Fill)[0].taker_order == slice_id(tid, 0)
    assert d.engine.twaps[tid].executed == 250_000
    assert not of_type(d.advance(999), TwapUpdate)  # slice 1 is due at +1 s
    ups = d.advance(1)  # slice 1: nothing rests at or under 2,020 — an IOC that cancels
    assert [u.status for u in of_type(ups, TwapUpdate)] == [1] and not of_type(ups, Fill)
    d.order(B, SELL, usd(2015), 2_000_000)
    ups = d.advance(2_500)  # time +3.5 s: slices 2 and 3 are due; one runs, for slice 3, catching up all of it
    fills = of_type(ups, Fill)
    assert [(f.taker_order, f.size) for f in fills] == [(slice_id(tid, 3), 750_000)]
    assert [u.status for u in of_type(ups, TwapUpdate)] == [1, 2]  # the last slice, then finished
    assert tid not in d.engine.twaps and d.engine.accounts[A + MAIN_STRATEGY + USDC].positions[ETHP].size == 1_000_000


def test_twap_rules_reject_and_change_nothing_and_a_twap_survives_a_snapshot_and_is_cancelled_by_id():
    from ddx_offchain.engine.commands import CancelOrder
    from ddx_offchain.engine.twap import MAX_TWAPS
    from ddx_offchain.engine.updates import TwapUpdate

    d = funded()
    before = items_except_cursors(d.engine)
    assert reason(twap(d, A, BUY, 1_000_000, 500, 500)[1]) == Reject.BAD_TWAP  # interval under 1 s
    assert reason(twap(d, A, BUY, 1_000_000, 1_000, 2_000)[1]) == Reject.BAD_TWAP  # interval above the duration
    assert reason(twap(d, A, BUY, 1_000_000, 10_000_000, 1_000)[1]) == Reject.BAD_TWAP  # 10,000 slices
    assert reason(twap(d, A, BUY, 1_000_000, 4_000, 1_000, limit_price=usd(2020) + 1)[1]) == Reject.BAD_TWAP
    assert reason(twap(d, A, BUY, 1_000_001, 4_000, 1_000)[1]) == Reject.BAD_SIZE
    assert items_except_cursors(d.engine) == before
    ids = [twap(d, A, BUY, 1_000_000, 60_000, 1_000, limit_price=usd(1000))[0] for _ in range(MAX_TWAPS)]
    assert reason(twap(d, A, BUY, 1_000_000, 60_000, 1_000)[1]) == Reject.TOO_MANY_TWAPS
    restored = Driver(Engine.restore(d.engine.snapshot()))
    assert restored.engine.state_root() == d.engine.state_root()
    ups = restored.advance(1_000)
    assert len([u for u in of_type(ups, TwapUpdate) if u.status == 1]) == MAX_TWAPS  # each runs its slice 1
    gone = restored.apply(CancelOrder(restored.rid(), A, MAIN_STRATEGY, ETHP, ids[0]))
    assert [(u.twap_id, u.status, u.reason) for u in of_type(gone, TwapUpdate)] == [(ids[0], 3, CancelReason.USER)]
    rest = restored.cancel_all(A)
    assert [u.twap_id for u in of_type(rest, TwapUpdate)] == ids[1:]


# ---------------------------------------------------------------------------------------------------- atomic batches


def test_an_atomic_batch_applies_all_its_actions_like_a_plain_one():
    d, twin = funded(), funded()
    for e in (d, twin):
        e.order(A, SELL, usd(2100), 1_000_000)
    old = next(iter(d.engine.orders))
    actions = (cancel(old), place(usd(2090), 1_000_000, order_type=2), place(usd(1900), 500_000, side=BUY, order_type=2))
    rid = b"\xa7" * 32
    ups = d.apply(Batch(rid, A, MAIN_STRATEGY, actions, True))
    plain = twin.apply(Batch(rid, A, MAIN_STRATEGY, actions))
    assert accepted(ups) and [type(u) for u in ups] == [type(u) for u in plain]
    assert items_except_cursors(d.engine) == items_except_cursors(twin.engine)


def test_a_failed_atomic_batch_changes_nothing_not_even_time_priority():
    from ddx_offchain.engine.commands import PlaceOrder

    d, twin = funded(), funded()
    for e in (d, twin):  # three asks at one level, A's in the middle (good till time 50,000)
        e.advance(1_000)
        e.order(B, SELL, usd(2100), 1_000_000)
        e.apply(PlaceOrder(b"\xa0" * 32, A, MAIN_STRATEGY, ETHP, SELL, LIMIT, usd(2100), 1_000_000, False, ZERO_ID,
                           50_000))
        e.order(B, SELL, usd(2100), 1_000_000)
    a_order = next(o.id for o in d.engine.orders.values() if o.account.trader == A)
    before = items_except_cursors(d.engine)
    ordinal = d.engine.ordinal
    ups = d.apply(Batch(d.rid(), A, MAIN_STRATEGY, (
        cancel(a_order),  # applied, then undone
        place(usd(2095), 1_000_000, order_type=2, cid=b"q".ljust(32, b"\x00")),
        place(usd(2100), 1_000_000, side=BUY, order_type=2),  # would cross the asks: rejected, so none applies
    ), True))
    assert reason(ups) == Reject.ATOMIC_BATCH_FAILED and len(ups) == 1 and "action 2" in ups[0].detail
    assert d.engine.ordinal == ordinal + 1 and items_except_cursors(d.engine) == before
    assert d.engine.order_by_client_id(A, MAIN_STRATEGY, b"q".ljust(32, b"\x00")) is None
    # the level's time priority is intact: a taker meets the asks in the same order as on the twin
    takes = [e.order(C_TAKER, BUY, usd(2100), 1_500_000, 1) for e in (d, twin)]
    assert [(f.maker_order, f.size) for f in of_type(takes[0], Fill)] == \
        [(f.maker_order, f.size) for f in of_type(takes[1], Fill)]
    # and A's expiry still holds: its rest expires on both at 50,000
    expired = [of_type(e.advance(49_000), OrderUpdate) for e in (d, twin)]
    assert [(u.order_id, u.reason) for u in expired[0]] == [(a_order, CancelReason.EXPIRED)] == \
        [(u.order_id, u.reason) for u in expired[1]]
    assert items_except_cursors(d.engine) == items_except_cursors(twin.engine)


def test_atomic_batches_never_trade():
    d = funded()
    d.order(A, SELL, usd(2100), 1_000_000, 0)
    limit_order = next(iter(d.engine.orders))
    assert reason(d.apply(Batch(d.rid(), A, MAIN_STRATEGY, (place(usd(2000), 1_000),), True))) == Reject.BAD_BATCH
    ups = d.apply(Batch(d.rid(), A, MAIN_STRATEGY, (modify(limit_order, usd(2090), 1_000_000),), True))
    assert reason(ups) == Reject.ATOMIC_BATCH_FAILED and "post-only" in ups[0].detail
    assert reason(d.apply(Batch(d.rid(), A, MAIN_STRATEGY, (cancel(b"\x55" * 32),), True))) == \
        Reject.ATOMIC_BATCH_FAILED
