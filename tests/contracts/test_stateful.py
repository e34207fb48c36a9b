"""Hypothesis stateful test: random deposits, engine withdrawals, checkpoints, claims (honest and forged),
time passing and rate limits. After every step: paid per token <= deposited, and what each trader has been paid
equals the contract's `claimed`, never exceeds the largest cumulative proven, and equals it whenever the rate
limit never cut a payment short.

DDX_HYPOTHESIS_EXAMPLES (default 20) sets the number of runs; steps per run are fixed at 30.
"""

import boa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .conftest import Ledger, hypothesis_examples, make_deployment

TRADERS = 3


class CustodyMachine(RuleBasedStateMachine):
    @initialize(
        capacity=st.sampled_from([300, 10**30]),
        seed_deposits=st.lists(st.integers(1, 1_000), min_size=TRADERS, max_size=TRADERS),
    )
    def deploy(self, capacity, seed_deposits):
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.dx = make_deployment(capacity=capacity, period=3_600)
        self.token = self.dx.token.address
        self.traders = [boa.env.generate_address() for _ in range(TRADERS)]
        self.ledger = Ledger(filler=4)
        # the engine's model: free balance and cumulative withdrawable per trader
        self.balance = {t: 0 for t in self.traders}
        self.cumulative = {t: 0 for t in self.traders}
        self.deposited = 0
        # what checkpoints prove: epoch -> {trader: (cumulative, siblings)}
        self.proven_at = {}
        # what claims have shown and paid
        self.max_proven = {t: 0 for t in self.traders}
        self.paid = {t: 0 for t in self.traders}
        self.cut_short = {t: False for t in self.traders}
        # start from a state where claims are possible: everyone deposited, withdrew half, and it was checkpointed
        for who, amount in enumerate(seed_deposits):
            self.deposit(who, amount)
            self.engine_withdraw(who, 50)
        self.checkpoint()

    def teardown(self):
        if hasattr(self, "_anchor"):
            self._anchor.__exit__(None, None, None)

    @rule(who=st.integers(0, TRADERS - 1), amount=st.integers(1, 1_000))
    def deposit(self, who, amount):
        trader = self.traders[who]
        self.dx.deposit(trader, amount)
        self.deposited += amount
        self.balance[trader] += amount
        self.ledger.set_balance(trader, self.token, self.balance[trader])

    @precondition(lambda self: any(self.balance.values()))
    @rule(who=st.integers(0, TRADERS - 1), fraction=st.integers(1, 100))
    def engine_withdraw(self, who, fraction):
        funded = [t for t in self.traders if self.balance[t] > 0]
        trader = funded[who % len(funded)]
        amount = max(1, self.balance[trader] * fraction // 100)
        self.balance[trader] -= amount
        self.cumulative[trader] += amount
        self.ledger.set_balance(trader, self.token, self.balance[trader])
        self.ledger.set_withdrawable(trader, self.token, self.cumulative[trader])

    @precondition(lambda self: any(self.cumulative.values()))
    @rule()
    def checkpoint(self):
        epoch = self.dx.checkpoint(self.ledger.root())
        self.proven_at[epoch] = {
            t: (self.cumulative[t], self.ledger.withdrawal_siblings(t, self.token))
            for t in self.traders
            if self.cumulative[t] > 0
        }

    @precondition(lambda self: self.proven_at)
    @rule(who=st.integers(0, TRADERS - 1), pick=st.integers(0, 10**6))
    def claim(self, who, pick):
        epochs = sorted(self.proven_at)
        epoch = epochs[pick % len(epochs)]
        proven = sorted(self.proven_at[epoch])
        trader = proven[who % len(proven)]
        cumulative, siblings = self.proven_at[epoch][trader]
        owed = cumulative - self.paid[trader]
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
        self.paid[trader] += paid
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

    @invariant()
    def paid_never_exceeds_deposits(self):
        if hasattr(self, "dx"):
            assert sum(self.dx.token.balanceOf(t) for t in self.traders) == sum(self.paid.values())
            assert sum(self.paid.values()) <= self.deposited
            assert self.dx.token.balanceOf(self.dx.exchange.address) == self.deposited - sum(self.paid.values())

    @invariant()
    def paid_is_the_largest_cumulative_proven(self):
        if hasattr(self, "dx"):
            for t in self.traders:
                assert self.dx.exchange.claimed(t, self.token) == self.paid[t]
                assert self.paid[t] <= self.max_proven[t]
                if not self.cut_short[t]:
                    assert self.paid[t] == self.max_proven[t]


CustodyMachine.TestCase.settings = settings(
    max_examples=hypothesis_examples(20),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_custody_state_machine = CustodyMachine.TestCase
