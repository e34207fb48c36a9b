"""Fixtures for the contract tests (titanoboa on py-evm): operator keys, a deployed exchange, a mock token,
and helpers that sign and submit operator messages exactly as operators and relayers do."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

import boa
import pytest
from eth_account import Account

from ddx_offchain.deployment.artifacts import REPO_ROOT
from ddx_offchain.protocol import operator_messages as om
from ddx_offchain.protocol.hashing import keccak256
from ddx_offchain.protocol.inbox import InboxCursor

boa.interpret.set_search_paths([str(REPO_ROOT)])

EXCHANGE = str(REPO_ROOT / "contracts/Exchange.vy")
MOCK_ERC20 = str(REPO_ROOT / "contracts/mocks/MockERC20.vy")
HARNESS = REPO_ROOT / "tests/harness"

DAY = 86400
ESCAPE_DELAY = 7 * DAY
GOVERNANCE_DELAY = 2 * DAY
FORCED_DEADLINE = DAY // 2  # governance (2 days) must wait 3 forced deadlines
CAPACITY = 10**30  # generous default: rate-limit tests set their own
PERIOD = DAY
MAIN = b"main".ljust(32, b"\0")


def operator_keys(count: int, salt: str = "ddx test operator") -> list[str]:
    """Deterministic keys, sorted by address (the contract's member order)."""
    keys = ["0x" + keccak256(f"{salt} {i}".encode()).hex() for i in range(count)]
    return sorted(keys, key=lambda k: int(Account.from_key(k).address, 16))


def addresses(keys) -> list[str]:
    return [Account.from_key(k).address for k in keys]


@dataclass
class Deployment:
    exchange: object
    token: object
    keys: list[str]
    operator_set: om.OperatorSet
    epoch: int = 0
    roots: dict = field(default_factory=dict)

    @property
    def domain(self) -> om.Domain:
        return om.Domain(chain_id=boa.env.evm.patch.chain_id, verifying_contract=self.exchange.address)

    def refresh_set(self) -> om.OperatorSet:
        set_id, threshold, members = self.exchange.operator_set()
        self.operator_set = om.OperatorSet(set_id, threshold, tuple(members))
        return self.operator_set

    def anchor(self) -> tuple[int, bytes]:
        """The L1 block a checkpoint anchors: the previous block, with its real hash."""
        number = boa.env.evm.patch.block_number - 1
        return number, _blockhash(number)

    def inbox_head(self) -> InboxCursor:
        deposits, forced, acc = self.exchange.inbox_head()
        return InboxCursor(deposits, forced, bytes(acc))

    def checkpoint_message(self, root: bytes, epoch: int | None = None, inbox: InboxCursor | None = None) -> om.Checkpoint:
        """A checkpoint of `root`, covering `inbox` (by default the whole inbox as it stands)."""
        if epoch is None:
            epoch = self.epoch + 1
        number, block_hash = self.anchor()
        return om.Checkpoint(self.operator_set.id, epoch, root, number, block_hash, inbox or self.inbox_head())

    def submit(self, message: om.Checkpoint, keys=None, quorum=None, operator_set=None, sender=None, suffix=()):
        signers = self.keys[: self.operator_set.threshold] if keys is None else keys
        if quorum is None:
            quorum = om.sign_quorum(message, self.domain, self.operator_set, signers)
        operator_set = self.operator_set if operator_set is None else operator_set
        name, args = om.checkpoint_call(message, operator_set, quorum, suffix)  # what relayers send
        getattr(self.exchange, name)(*args, sender=sender or boa.env.eoa)
        self.epoch = message.epoch
        self.roots[message.epoch] = message.state_root

    def checkpoint(self, root: bytes) -> int:
        message = self.checkpoint_message(root)
        self.submit(message)
        return message.epoch

    def fund(self, who: str, amount: int) -> None:
        self.token.mint(who, amount)
        self.token.approve(self.exchange.address, 2**256 - 1, sender=who)

    def deposit(self, who: str, amount: int) -> None:
        self.fund(who, amount)
        self.exchange.deposit(self.token.address, amount, sender=who)


def _blockhash(number: int) -> bytes:
    """The hash boa's EVM returns for BLOCKHASH(number) (patched per test for the last 256 blocks)."""
    prev = boa.env.evm.patch.prev_hashes
    current = boa.env.evm.patch.block_number
    distance = current - number
    if 1 <= distance <= len(prev):
        return bytes(prev[distance - 1])
    return b"\0" * 32


def install_block_hashes() -> None:
    """Give the last 256 blocks distinct, known hashes so anchoring rules are exercised for real."""
    current = boa.env.evm.patch.block_number
    boa.env.evm.patch.prev_hashes = [keccak256(f"block {current - d}".encode()) for d in range(1, 257)]


@lru_cache(maxsize=None)
def factory(path: str):
    """Compile once per session (boa.load recompiles on every call), deploy many times."""
    return boa.load_partial(str(path))


def deploy_token(symbol: str = "USDX"):
    return factory(MOCK_ERC20).deploy("Mock " + symbol, symbol, 6)


def deploy_exchange(
    keys,
    threshold: int | None = None,
    tokens=(),
    capacity: int = CAPACITY,
    period: int = PERIOD,
    supermajority: bool = True,
    escape_delay: int = ESCAPE_DELAY,
    governance_delay: int = GOVERNANCE_DELAY,
    forced_deadline: int = FORCED_DEADLINE,
):
    members = addresses(keys)
    if threshold is None:
        threshold = om.smallest_supermajority(len(members))
    collateral = [(t.address if hasattr(t, "address") else t, capacity, period) for t in tokens]
    return factory(EXCHANGE).deploy(
        members, threshold, supermajority, collateral, escape_delay, forced_deadline, governance_delay
    )


def make_deployment(count: int = 4, threshold: int | None = None, **kwargs) -> Deployment:
    boa.env.time_travel(blocks=300)  # leave room below for anchored blocks
    install_block_hashes()
    keys = operator_keys(count)
    token = deploy_token()
    exchange = deploy_exchange(keys, threshold, tokens=[token], **kwargs)
    deployment = Deployment(exchange=exchange, token=token, keys=keys, operator_set=None)  # type: ignore[arg-type]
    deployment.refresh_set()
    return deployment


@pytest.fixture
def dx() -> Deployment:
    with boa.env.anchor():
        yield make_deployment()


def hypothesis_examples(default: int) -> int:
    """Examples per property test; DDX_HYPOTHESIS_EXAMPLES turns them up (e.g. 2000 for a long local run)."""
    return int(os.environ.get("DDX_HYPOTHESIS_EXAMPLES", default))


def events(contract, name: str) -> list:
    """The decoded events called `name` that `contract`'s last transaction emitted."""
    return [e for e in contract.get_logs() if type(e).__name__ == name]


class Ledger:
    """A real state tree (ddx_offchain.tree.StateTree) holding WITHDRAWAL and BALANCE leaves, plus filler items
    of other kinds so proofs have depth, as the engine would publish it."""

    def __init__(self, filler: int = 8):
        from ddx_offchain.protocol import items
        from ddx_offchain.tree import StateTree

        self.items = items
        self.tree = StateTree()
        for i in range(filler):
            key = items.item_key(items.Kind.SYSTEM, ["uint256"], [i])
            self.tree.put(key, items.item_value(items.Kind.SYSTEM, ["uint256"], [i]))

    def set_withdrawable(self, trader: str, token: str, cumulative: int) -> None:
        self.tree.put(self.items.withdrawal_key(trader, token), self.items.withdrawal_value(trader, token, cumulative))

    def set_balance(self, trader: str, token: str, amount: int, deposited: int) -> None:
        """The BALANCE leaf: escape amount and the deposits the engine credited; (0, 0) removes it, as the engine."""
        key = self.items.balance_key(trader, token)
        if amount == deposited == 0:
            if self.tree.get(key) is not None:
                self.tree.delete(key)
        else:
            self.tree.put(key, self.items.balance_value(trader, token, amount, deposited))

    def root(self) -> bytes:
        return self.tree.root()

    def withdrawal_siblings(self, trader: str, token: str) -> list[bytes]:
        return list(self.tree.prove(self.items.withdrawal_key(trader, token)).siblings)

    def balance_siblings(self, trader: str, token: str) -> list[bytes]:
        return list(self.tree.prove(self.items.balance_key(trader, token)).siblings)

    def balance_absence(self, trader: str, token: str) -> tuple[list[bytes], bytes, bytes]:
        """(siblings, other_key, other_value_hash) of the BALANCE key's non-inclusion proof, as `escape` takes them
        (zero key and hash when the path ends in an empty subtree)."""
        proof = self.tree.prove_absent(self.items.balance_key(trader, token))
        return list(proof.siblings), proof.other_key or b"\0" * 32, proof.other_value_hash or b"\0" * 32


def announce(dx: Deployment, message, keys=None, operator_set=None, sender=None) -> None:
    """Sign a governance message with a quorum of `keys` and relay its announcement."""
    operator_set = operator_set or dx.operator_set
    keys = dx.keys[: operator_set.threshold] if keys is None else keys
    quorum = om.sign_quorum(message, dx.domain, operator_set, keys)
    sender = sender or boa.env.eoa
    ex = dx.exchange
    if isinstance(message, om.RotateOperators):
        ex.announce_rotation(message.nonce, list(message.members), message.threshold, operator_set.as_abi(), *quorum.as_abi(), sender=sender)
    elif isinstance(message, om.SetThreshold):
        ex.announce_threshold(message.nonce, message.threshold, operator_set.as_abi(), *quorum.as_abi(), sender=sender)
    elif isinstance(message, om.SetCollateral):
        ex.announce_collateral(message.nonce, message.token, message.allowed, operator_set.as_abi(), *quorum.as_abi(), sender=sender)
    elif isinstance(message, om.SetRateLimit):
        ex.announce_rate_limit(
            message.nonce, message.token, message.capacity, message.period, operator_set.as_abi(), *quorum.as_abi(), sender=sender
        )
    elif isinstance(message, om.CancelChange):
        ex.cancel_change(message.nonce, message.target, operator_set.as_abi(), *quorum.as_abi(), sender=sender)
    else:  # pragma: no cover
        raise TypeError(message)


def execute(dx: Deployment, message, sender=None) -> None:
    """Execute an announced change (anyone may)."""
    sender = sender or boa.env.generate_address()
    ex = dx.exchange
    if isinstance(message, om.RotateOperators):
        ex.execute_rotation(message.nonce, list(message.members), message.threshold, sender=sender)
    elif isinstance(message, om.SetThreshold):
        ex.execute_threshold(message.nonce, message.threshold, sender=sender)
    elif isinstance(message, om.SetCollateral):
        ex.execute_collateral(message.nonce, message.token, message.allowed, sender=sender)
    elif isinstance(message, om.SetRateLimit):
        ex.execute_rate_limit(message.nonce, message.token, message.capacity, message.period, sender=sender)
    else:  # pragma: no cover
        raise TypeError(message)
