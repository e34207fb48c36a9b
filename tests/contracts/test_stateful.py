"""Hypothesis stateful test: random deposits (credited by the engine, or left uncredited as when operators stop),
engine withdrawals, checkpoints, claims (honest and forged), time passing, rate limits, a freeze and escapes (with
deposits after the last checkpoint, and with no checkpoint at all). After every step: paid per token <= deposited,
the contract holds exactly deposited - paid, the contract's `claimed` is what the model says was paid as
withdrawable, never more than the largest cumulative proven and equal to it whenever the rate limit never cut a
payment short; once a trader has escaped in full, it holds every unit it ever deposited.

Every run ends with a freeze (if none happened) and every trader escaping in full.
DDX_HYPOTHESIS_EXAMPLES (default 20) sets the number of runs; steps per run are fixed at 30.
"""

import boa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .conftest import ESCAPE_DELAY, Ledger, hypothesis_examples, make_deployment

TRADERS = 3
ZERO = b"\0" * 32
NO_LEAF = (0, 0, [], ZERO, ZERO)  # escape's balance arguments in the empty tree (no checkpoint)


class CustodyMachine(RuleBasedStateMachine):
    @initialize(
        capacity=st.sampled_from([300, 10**30]),
        seed_deposits=st.lists(st.integers(1, 1_000), min_size=TRADERS, max_size=TRADERS),
        checkpoint_first=st.booleans(),
    )
    def deploy(self, capacity, seed_deposits, checkpoint_first):
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.dx = make_deployment(capacity=capacity, period=3_600)
        self.token = self.dx.token.address
        self.traders = [boa.env.generate_address() for _ in range(TRADERS)]
        self.ledger = Ledger(filler=4)
        self.frozen = False
        # the engine's model: free balance, credited deposits and cumulative withdrawable per trader
        self.balance = {t: 0 for t in self.traders}
        self.credited = {t: 0 for t in self.traders}
        self.cumulative = {t: 0 for t in self.traders}
        # the chain: deposited per trader, and deposits the engine has not credited yet (in order)
        self.on_chain = {t: 0 for t in self.traders}
        self.uncredited = []
        # what checkpoints prove: epoch -> {trader: (cumulative, siblings)}; escape arguments of the last one
        self.proven_at = {}
        self.escape_args = {t: (NO_LEAF, 0, []) for t in self.traders}
        self.escape_leaf = {t: (0, 0, 0) for t in self.traders}  # (balance, deposited, cumulative) at the last one
        # what claims and escapes have shown and paid
        self.max_proven = {t: 0 for t in self.traders}
        self.claimed = {t: 0 for t in self.traders}
        self.escaped = {t: 0 for t in self.traders}
        self.cut_short = {t: False for t in self.traders}
        # start from a state where claims are possible (everyone deposited, withdrew half, and it was checkpointed),
        # or from one where operators never checkpointed at all
        for who, amount in enumerate(seed_deposits):
            self.deposit(who, amount)
            self.engine_withdraw(who, 50)
        if checkpoint_first:
            self.checkpoint()

    def teardown(self):
        if not hasattr(self, "_anchor"):
            return
        try:
            self.everyone_escapes()
        finally:
            self._anchor.__exit__(None, None, None)

    def everyone_escapes(self):
        """Every run ends with the operators gone: each trader escapes (waiting out the rate limit as needed) and
        then holds every unit it ever deposited, and the contract holds nothing."""
        if not self.frozen:
            self.operators_stop()
        for who, trader in enumerate(self.traders):
            while self._owed(trader) != (0, 0):
                boa.env.time_travel(seconds=3_600)  # a full bucket
                self.escape(who)
            assert self.dx.token.balanceOf(trader) == self.on_chain[trader]
        assert self.dx.token.balanceOf(self.dx.exchange.address) == 0

    def _set_leaves(self, trader):
        self.ledger.set_balance(trader, self.token, self.balance[trader], self.credited[trader])
        if self.cumulative[trader]:
            self.ledger.set_withdrawable(trader, self.token, self.cumulative[trader])

    @precondition(lambda self: not self.frozen)
    @rule(who=st.integers(0, TRADERS - 1), amount=st.integers(1, 1_000))
    def deposit(self, who, amount):
        """A deposit the engine credits at once (before any later checkpoint)."""
        trader = self.traders[who]
        self.uncredited_deposit(who, amount)
        self.credit_pending()

    @precondition(lambda self: not self.frozen)
    @rule(who=st.integers(0, TRADERS - 1), amount=st.integers(1, 1_000))
    def uncredited_deposit(self, who, amount):
        """A deposit on-chain that the engine has not credited (yet): in no BALANCE leaf."""
        trader = self.traders[who]
        self.dx.deposit(trader, amount)
        self.on_chain[trader] += amount
        self.uncredited.append((trader, amount))

    @precondition(lambda self: self.uncredited)
    @rule()
    def credit_pending(self):
        for trader, amount in self.uncredited:
            self.balance[trader] += amount
            self.credited[trader] += amount
            self._set_leaves(trader)
        self.uncredited = []

    @precondition(lambda self: any(self.balance.values()))
    @rule(who=st.integers(0, TRADERS - 1), fraction=st.integers(1, 100))
    def engine_withdraw(self, who, fraction):
        funded = [t for t in self.traders if self.balance[t] > 0]
        trader = funded[who % len(funded)]
        amount = max(1, self.balance[trader] * fraction // 100)
        self.balance[trader] -= amount
        self.cumulative[trader] += amount
        self._set_leaves(trader)

    @precondition(lambda self: not self.frozen and any(self.cumulative.values()))
    @rule()
    def checkpoint(self):
        epoch = self.dx.checkpoint(self.ledger.root())
        self.proven_at[epoch] = {
            t: (self.cumulative[t], self.ledger.withdrawal_siblings(t, self.token))
            for t in self.traders
            if self.cumulative[t] > 0
        }
        for t in self.traders:
            if self.balance[t] or self.credited[t]:
                leaf = (self.balance[t], self.credited[t], self.ledger.balance_siblings(t, self.token), ZERO, ZERO)
            else:
                siblings, other_key, other_value_hash = self.ledger.balance_absence(t, self.token)
                leaf = (0, 0, siblings, other_key, other_value_hash)
            cumulative = self.cumulative[t]
            withdrawal = self.ledger.withdrawal_siblings(t, self.token) if cumulative else []
            self.escape_args[t] = (leaf, cumulative, withdrawal)
            self.escape_leaf[t] = (self.balance[t], self.credited[t], cumulative)

    @precondition(lambda self: self.proven_at)
    @rule(who=st.integers(0, TRADERS - 1), pick=st.integers(0, 10**6))
    def claim(self, who, pick):
        epochs = sorted(self.proven_at)
        epoch = epochs[pick % len(epochs)]
        proven = sorted(self.proven_at[epoch])
        trader = proven[who % len(proven)]
        cumulative, siblings = self.proven_at[epoch][trader]
        owed = cumulative - self.claimed[trader]
        if owed <= 0:
            with boa.reverts("custody: nothing to claim"):
                self.dx.exchange.claim(trader, self.token, cumulative, epoch, siblings)
            event("stale or repeated claim refused")
            return
        available = self.dx.exchange.available_to_pay(self.token)
        if available == 0:
            with boa.reverts("custody: rate limit exhausted"):
                self.dx.exchange.claim(trader, self.token, cumulative, epoch, siblings)
            self.cut_short[trader] = True
            return
        paid = self.dx.exchange.claim(trader, self.token, cumulative, epoch, siblings)
        assert paid == min(owed, available)
        event("claim paid in full" if paid == owed else "claim cut short by the rate limit")
        self.cut_short[trader] |= paid < owed
        self.claimed[trader] += paid
        self.max_proven[trader] = max(self.max_proven[trader], cumulative)

    @precondition(lambda self: self.proven_at)
    @rule(who=st.integers(0, TRADERS - 1), extra=st.integers(1, 10**6))
    def forged_claim(self, who, extra):
        trader = self.traders[who]
        epoch = max(self.proven_at)
        cumulative, siblings = self.proven_at[epoch].get(trader, (0, []))
        with boa.reverts():
            self.dx.exchange.claim(trader, self.token, cumulative + extra, epoch, siblings)

    @rule(seconds=st.integers(1, 7_200))
    def time_passes(self, seconds):
        boa.env.time_travel(seconds=seconds)

    @precondition(lambda self: not self.frozen)
    @rule()
    def operators_stop(self):
        boa.env.time_travel(seconds=ESCAPE_DELAY)
        self.dx.exchange.freeze()
        self.frozen = True
        event("frozen with a checkpoint" if self.proven_at else "frozen before any checkpoint")
        if any(self.on_chain[t] > self.escape_leaf[t][1] for t in self.traders):
            event("frozen with deposits after the last checkpoint")
        if self.uncredited:
            event("frozen with deposits the engine never credited")

    def _owed(self, trader):
        balance, deposited, cumulative = self.escape_leaf[trader]
        withdrawal = max(0, cumulative - self.claimed[trader])
        return withdrawal, max(0, balance + self.on_chain[trader] - deposited - self.escaped[trader])

    @precondition(lambda self: self.frozen)
    @rule(who=st.integers(0, TRADERS - 1))
    def escape(self, who):
        trader = self.traders[who]
        (balance, deposited, siblings, other_key, other_value_hash), cumulative, withdrawal = self.escape_args[trader]
        args = (trader, self.token, balance, deposited, siblings, cumulative, withdrawal, other_key, other_value_hash)
        owed_withdrawal, owed_balance = self._owed(trader)
        owed = owed_withdrawal + owed_balance
        if owed == 0:
            with boa.reverts("custody: nothing to escape"):
                self.dx.exchange.escape(*args)
            event("repeated escape refused")
            return
        available = self.dx.exchange.available_to_pay(self.token)
        if available == 0:
            with boa.reverts("custody: rate limit exhausted"):
                self.dx.exchange.escape(*args)
            self.cut_short[trader] = True
            return
        paid = self.dx.exchange.escape(*args)
        assert paid == min(owed, available)
        event("escape paid in full" if paid == owed else "escape cut short by the rate limit")
        self.cut_short[trader] |= paid < owed
        paid_withdrawal = min(paid, owed_withdrawal)
        self.claimed[trader] += paid_withdrawal
        self.escaped[trader] += paid - paid_withdrawal
        self.max_proven[trader] = max(self.max_proven[trader], cumulative)

    @precondition(lambda self: self.frozen)
    @rule(who=st.integers(0, TRADERS - 1), extra=st.integers(1, 10**6))
    def forged_escape(self, who, extra):
        """More than the leaf says, or a `deposited` understated to have credited deposits paid twice."""
        trader = self.traders[who]
        (balance, deposited, siblings, other_key, other_value_hash), cumulative, withdrawal = self.escape_args[trader]
        for forged in ((balance + extra, deposited), (balance, max(0, deposited - extra))):
            if forged == (balance, deposited):
                continue
            with boa.reverts():
                self.dx.exchange.escape(trader, self.token, *forged, siblings, 0, [], other_key, other_value_hash)

    def _paid(self, trader):
        return self.claimed[trader] + self.escaped[trader]

    @invariant()
    def paid_never_exceeds_deposits(self):
        if hasattr(self, "dx"):
            paid = sum(self._paid(t) for t in self.traders)
            assert sum(self.dx.token.balanceOf(t) for t in self.traders) == paid
            assert paid <= sum(self.on_chain.values())
            assert self.dx.token.balanceOf(self.dx.exchange.address) == sum(self.on_chain.values()) - paid

    @invariant()
    def claimed_is_the_largest_cumulative_proven(self):
        if hasattr(self, "dx"):
            for t in self.traders:
                assert self.dx.exchange.claimed(t, self.token) == self.claimed[t]
                assert self.dx.exchange.escaped(t, self.token) == self.escaped[t]
                assert self.dx.exchange.deposited(t, self.token) == self.on_chain[t]
                assert self.claimed[t] <= self.max_proven[t]
                if not self.cut_short[t]:
                    assert self.claimed[t] == self.max_proven[t]

    @invariant()
    def an_escape_returns_every_deposited_unit(self):
        """The engine here never trades, so what a trader owns is what it deposited: once escaped, it has it all."""
        if hasattr(self, "dx") and self.frozen:
            for t in self.traders:
                if self._owed(t) == (0, 0):
                    assert self.dx.token.balanceOf(t) == self.on_chain[t]


CustodyMachine.TestCase.settings = settings(
    max_examples=hypothesis_examples(20),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_custody_state_machine = CustodyMachine.TestCase
