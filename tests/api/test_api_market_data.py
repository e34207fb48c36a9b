"""Market data through a real node: the real engine behind the operator node, the aiohttp API on a socket and the
SDK reading every new route; the book feed over the WebSocket rebuilt by the SDK's local book; pagination."""

from __future__ import annotations

import asyncio

from apihelpers import DOMAIN, OPERATOR, EngineOperator, running

from ddx_offchain.client import DdxClient, Trader
from ddx_offchain.node import views
from ddx_offchain.protocol.requests import market_id

ETHP = market_id("ETHP")
DOLLAR = 1_000_000
KEYS = [bytes([0x40 + i]) * 32 for i in range(3)]


def run(coro):
    return asyncio.run(coro)


def test_market_data_routes_and_book_feed_through_a_real_node(tmp_path):
    async def scenario():
        op = EngineOperator(tmp_path / "history.sqlite")
        traders = [Trader(k, DOMAIN) for k in KEYS]
        op.price(2_000 * DOLLAR)
        op.advance(60_000)
        for t in traders:
            op.deposit(t.address, 100_000 * DOLLAR)
        maker, taker, other = traders
        async with running(op.node) as server:
            url = str(server.make_url("/"))
            async with DdxClient(url, DOMAIN, {OPERATOR}) as client:
                stream = client.book_stream("ETHP")
                first = await asyncio.wait_for(anext(stream), 5)
                assert (first.bids, first.asks) == ([], [])
                # a maker ladder, then takers crossing it over several minutes of sequenced time
                for k in range(5):
                    op.request(maker.place_order("ETHP", 1, 100_000, (2_001 + k) * DOLLAR))
                    op.request(other.place_order("ETHP", 0, 50_000, (1_999 - k) * DOLLAR))
                fills = []
                for k in range(6):
                    op.request(taker.place_order("ETHP", 0, 30_000 + 10_000 * k, 2_004 * DOLLAR, order_type=1))
                    op.advance(61_000)
                    fills.append(k)
                op.price(2_000 * DOLLAR)  # the mark follows the book's mid: a premium, so funding is paid
                op.advance(3_600_000)  # a funding boundary
                # the streamed book catches up with the engine's book, delta by delta
                engine_book = views.book_view(op.engine, ETHP, depth=1000)
                expected = ([(lv.price, lv.size) for lv in engine_book.bids], [(lv.price, lv.size) for lv in engine_book.asks])
                book = first
                while (book.bids, book.asks) != expected:
                    book = await asyncio.wait_for(anext(stream), 5)
                await stream.aclose()
                snapshot = await client.order_book("ETHP")
                assert (snapshot.bids, snapshot.asks, snapshot.seq) == (book.bids, book.asks, book.seq)

                markets = await client.markets()
                assert [(m.symbol, m.tick, m.lot, m.size_decimals) for m in markets] == [("ETHP", 10_000, 1_000, 6)]
                ticker = await client.ticker("ETHP")
                trades = await client.trades("ETHP", limit=1000)
                assert len(trades) >= 6 and trades == sorted(trades, key=lambda t: -t.id)
                assert ticker.last == trades[0].price and ticker.best_bid == book.bids[0][0] and ticker.best_ask == book.asks[0][0]
                assert ticker.volume24h == sum(t.size for t in trades)
                assert ticker.quote_volume24h == sum(t.price * t.size // 10**6 for t in trades)
                assert ticker.open24h == trades[-1].price and ticker.high24h == max(t.price for t in trades)
                assert ticker.time == op.engine.time and ticker.next_funding_time == op.engine.markets[ETHP].next_funding
                assert ticker.open_interest == sum(p.size for p in op.engine.markets[ETHP].positions.values() if p.size > 0) > 0
                assert [t.market for t in await client.tickers()] == ["0x" + ETHP.hex()]
                candles = await client.candles("ETHP", "1m", limit=1000)
                assert sum(c.volume for c in candles) == ticker.volume24h and all(c.start % 60_000 == 0 for c in candles)
                assert len(await client.candles("ETHP", "1h", limit=1000)) >= 1
                funding = await client.funding_history("ETHP")
                assert funding and funding[-1].time == op.engine.time and funding[-1].per_unit > 0
                assert ticker.mark > ticker.index and ticker.funding_per_unit == funding[-1].per_unit
                assert ticker.predicted_funding_per_unit == (ticker.mark - ticker.index) // 8  # dampener 8, under the cap

                account = await client.account(taker.address)
                (strategy,) = account.accounts
                (position,) = strategy.positions
                # a long with 100 000 dollars behind 0.33 contracts is never liquidated; the short against it is
                assert position.size > 0 and position.liquidation_price is None
                (short,) = (await client.account(maker.address)).accounts[0].positions
                assert short.size == -position.size and short.liquidation_price > short.mark
                assert strategy.available_margin == strategy.equity - strategy.initial_margin

                # the taker's fills, paged one by one by ordinal, newest first, are its side of the public trades
                op.node.history.flush()
                seen, before = [], None
                while True:
                    page = await client.fills(taker.address, before=before, limit=1)
                    seen.extend(page.items)
                    if page.next is None:
                        break
                    before = page.next
                assert [f.ordinal for f in seen] == [t.id for t in trades]
                assert all(f.role == "taker" and f.side == "buy" for f in seen)
                maker_fills = await client.fills(maker.address, limit=1000)
                assert {f.role for f in maker_fills.items} == {"maker"} and maker_fills.next is None
                orders = await client.order_history(taker.address, limit=1000)
                assert {o.status for o in orders.items} <= {"filled", "cancelled"} and orders.items
                cancelled = await client.order_history(taker.address, limit=1000, status="cancelled")
                assert all(o.reason_name == "ioc_remainder" for o in cancelled.items)
                payments = await client.funding_payments(taker.address)
                (paid,) = payments.items
                assert paid.size == position.size and paid.amount == -(position.size * paid.per_unit) // 10**6 < 0  # ceil paid
                assert (await client.liquidations(taker.address)).items == []
                assert await client.withdrawable(taker.address) == []
                resp = await server.get(f"/v1/traders/0x{taker.address.hex()}/balances")
                assert (await resp.json())["balances"] == []
                # refusals
                for path in ("/v1/tickers/0x" + "ff" * 32, "/v1/markets/0x" + "ff" * 32 + "/trades"):
                    assert (await server.get(path)).status == 404
                resp = await server.get("/v1/markets/0x" + ETHP.hex() + "/candles?interval=2m")
                assert resp.status == 400 and (await resp.json())["error"] == "bad_query"
                resp = await server.get(f"/v1/traders/0x{taker.address.hex()}/fills?status=open")
                assert resp.status == 400

    run(scenario())


def test_book_feed_resumes_from_a_sequence_number_and_refuses_one_it_does_not_hold():
    async def scenario():
        op = EngineOperator()
        maker = Trader(KEYS[0], DOMAIN)
        op.price(2_000 * DOLLAR)
        op.deposit(maker.address, 100_000 * DOLLAR)
        async with running(op.node) as server:
            key = "0x" + ETHP.hex()
            ws = await server.ws_connect(f"/v1/ws?channel=book&key={key}")
            snapshot = await ws.receive_json()
            assert snapshot["type"] == "book" and snapshot["bids"] == []
            op.request(maker.place_order("ETHP", 0, 100_000, 1_990 * DOLLAR))
            first = await ws.receive_json()
            assert first["type"] == "bookDelta" and first["prevSeq"] == snapshot["seq"]
            assert first["bids"] == [[str(1_990 * DOLLAR), "100000"]]
            await ws.close()
            op.request(maker.place_order("ETHP", 0, 50_000, 1_990 * DOLLAR))
            op.request(maker.place_order("ETHP", 1, 20_000, 2_010 * DOLLAR))
            ws = await server.ws_connect(f"/v1/ws?channel=book&key={key}&from={first['seq']}")
            resumed = [await ws.receive_json(), await ws.receive_json()]
            assert resumed[0]["prevSeq"] == first["seq"] and resumed[1]["prevSeq"] == resumed[0]["seq"]
            assert resumed[0]["bids"] == [[str(1_990 * DOLLAR), "150000"]]
            await ws.close()
            ws = await server.ws_connect(f"/v1/ws?channel=book&key={key}&from={int(first['seq']) + 1}")
            assert (await ws.receive_json())["error"] == "resume_unavailable"
            await ws.close()
            resp = await server.get("/v1/ws?channel=book&key=0x" + "ff" * 32)
            assert resp.status == 404

    run(scenario())


def test_a_node_restored_from_a_snapshot_serves_the_same_market_data(tmp_path):
    """Books and positions re-seeded from the snapshot's engine, trades, candles and funding read back from
    history: the same figures as the node that applied everything."""
    import shutil

    op = EngineOperator(tmp_path / "a.sqlite")
    maker, taker = Trader(KEYS[0], DOMAIN), Trader(KEYS[1], DOMAIN)
    op.price(2_000 * DOLLAR)
    op.advance(1_000)
    for t in (maker, taker):
        op.deposit(t.address, 100_000 * DOLLAR)
    for k in range(4):
        op.request(maker.place_order("ETHP", 1, 100_000, (2_001 + k) * DOLLAR))
        op.request(maker.place_order("ETHP", 0, 100_000, (1_999 - k) * DOLLAR))
        op.request(taker.place_order("ETHP", 0, 40_000, 2_003 * DOLLAR, order_type=1))
        op.price(2_000 * DOLLAR)
        op.advance(3_600_000)
    snapshot = op.node.service.snapshot()
    op.node.history.flush()
    for suffix in ("", "-wal"):  # the database and its write-ahead log, as a crashed node would leave them
        if (tmp_path / f"a.sqlite{suffix}").exists():
            shutil.copy(tmp_path / f"a.sqlite{suffix}", tmp_path / f"b.sqlite{suffix}")
    restored = EngineOperator(tmp_path / "b.sqlite")
    restored.node.service.restore(snapshot)
    restored.sequencer.log = list(op.sequencer.log)  # the Raft log the snapshot covers
    a, b = op.node.market_data, restored.node.market_data
    book_a, book_b = a.book(ETHP, 1000), b.book(ETHP, 1000)
    assert (book_b.bids, book_b.asks, book_b.checksum) == (book_a.bids, book_a.asks, book_a.checksum)
    # the restored book's chain of deltas starts at the snapshot (documented: a client following it re-syncs once)
    assert book_b.seq == op.engine.ordinal - 1 >= book_a.seq and b.best(ETHP) == a.best(ETHP)
    assert b.trades(ETHP, 1000) == a.trades(ETHP, 1000) and len(a.trades(ETHP, 1000)) >= 4
    assert b.candles(ETHP, "1h", limit=1000) == a.candles(ETHP, "1h", limit=1000)
    assert b.funding_history(ETHP, limit=1000) == a.funding_history(ETHP, limit=1000)
    assert b.day_stats(ETHP) == a.day_stats(ETHP)
    # and both go on identically: the next funding pays the same positions the same amounts
    for node in (op, restored):
        node.time = op.time
    op.advance(3_600_000)
    restored.command(restored.ec.AdvanceTime(b"\xee" * 32, op.time))
    op.node.history.flush()
    restored.node.history.flush()
    assert restored.node.history.funding_payments(taker.address, None, 10) == op.node.history.funding_payments(taker.address, None, 10)
    op.node.close()
    restored.node.close()
