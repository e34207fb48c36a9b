"""The settlement commands of `ddx`: `withdraw request|status|claim`, `force withdraw|cancel-all|close|status`,
`escape` and `audit` (registered in cli.py).

Every command names the deployment by its manifest (chain id, exchange, ABIs; ddx_offchain/deployment/manifest.py), the
chain by `--rpc`, and the operators by `--api`. The trader's key comes from an eth-account keystore (`--keystore`)
or an ape account (`--ape-account ALIAS`, i.e. ~/.ape/accounts/ALIAS.json), unlocked from $DDX_KEYSTORE_PASSWORD
or a prompt — never from the command line.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from ..errors import DdxError

withdraw_app = typer.Typer(no_args_is_help=True, help="Withdraw collateral: request, follow, claim with a proof.")
force_app = typer.Typer(
    no_args_is_help=True,
    help="Send a request through L1 when the operators do not take it: they must apply it, or anyone may freeze "
    "the exchange after the forced deadline (then `ddx escape`).",
)

PASSWORD_ENV = "DDX_KEYSTORE_PASSWORD"
MANIFEST_HELP = "the deployment manifest (a file, or a deployments/<network>-<chain id> folder)"


class CommandError(DdxError):
    """A problem the user can fix (bad option, unreachable node, nothing to claim): printed, exit code 1."""


def _manifest(path: str):
    from ..deployment.manifest import ManifestError, load_manifest

    try:
        return load_manifest(path)
    except ManifestError as exc:
        raise CommandError(str(exc)) from None


def _key(keystore: str | None, ape_account: str | None) -> bytes:
    from ..daemon.keystore import KeystoreError, load_operator_key

    if (keystore is None) == (ape_account is None):
        raise CommandError("give exactly one of --keystore PATH or --ape-account ALIAS")
    path = Path(keystore) if keystore else Path.home() / ".ape" / "accounts" / f"{ape_account}.json"
    try:
        return load_operator_key(path, PASSWORD_ENV)
    except KeystoreError as exc:
        raise CommandError(str(exc)) from None


def _token(manifest, token: str | None) -> str:
    from eth_utils import is_address, to_checksum_address

    if token is None:
        if not manifest.collateral:
            raise CommandError("the manifest lists no collateral: pass --token")
        return manifest.collateral[0].token
    if not is_address(token):
        raise CommandError(f"--token {token!r} is not an address")
    return to_checksum_address(token)


def _domains(manifest):
    from ..protocol.eip712 import Domain as RequestDomain

    return RequestDomain.of(manifest.chain_id, manifest.exchange)


def _operators(manifest) -> list[bytes]:
    return [bytes.fromhex(a[2:]) for a in manifest.operators]


def _run(coro):
    from ..client.claims import ClaimError
    from ..client.settlement import SettlementError

    try:
        return asyncio.run(coro)
    except (CommandError, SettlementError, ClaimError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


def _settled(api: list[str] | None, rpc: str | None, manifest, go):
    """Run `go(settlement)` with the SDK's settlement service over the operators at `api` and the chain at `rpc`."""
    from ..client.api import DdxClient
    from ..client.settlement import Settlement

    async def main():
        async with DdxClient(api or [], _domains(manifest), _operators(manifest)) as client:
            settlement = Settlement.connect(client, rpc, manifest) if rpc else Settlement(client, None, None, [])
            return await go(settlement)

    return _run(main())


# ---- withdraw request ------------------------------------------------------------------------------------------


@withdraw_app.command("request")
def withdraw_request(
    amount: int = typer.Option(..., "--amount", help="token base units (e.g. 1000000 = 1 USDC)"),
    api: list[str] = typer.Option(..., "--api", help="an operator's API URL (repeat for fail-over)"),
    manifest: str = typer.Option(..., "--manifest", help=MANIFEST_HELP),
    token: str = typer.Option(None, "--token", help="collateral token (default: the manifest's first)"),
    strategy: str = typer.Option("main", "--strategy", help="the strategy to withdraw from"),
    keystore: str = typer.Option(None, "--keystore", help="eth-account keystore of the trader"),
    ape_account: str = typer.Option(None, "--ape-account", help="ape account alias of the trader"),
) -> None:
    """Sign and submit a withdraw intent; prints the operator's receipt (sequenced, not yet final)."""
    from ..client.signer import Trader

    try:
        m = _manifest(manifest)
        key = _key(keystore, ape_account)
        token_address = _token(m, token)
    except CommandError as exc:
        _fail(exc)
    if amount <= 0:
        _fail(CommandError("--amount must be positive"))

    async def go(settlement):
        receipt = await settlement.request_withdrawal(Trader(key, _domains(m)), token_address, amount, strategy)
        r = receipt.receipt.receipt
        typer.echo(f"withdraw intent sequenced: request 0x{r.request_hash.hex()} index {r.request_index} epoch {r.epoch}, "
                   f"receipt signed by operator 0x{receipt.operator.hex()}")
        typer.echo(f"it becomes claimable once a checkpoint of an epoch after {r.epoch} is recorded: `ddx withdraw status`")

    _settled(api, None, m, go)


# ---- withdraw status -------------------------------------------------------------------------------------------


@withdraw_app.command("status")
def withdraw_status(
    api: list[str] = typer.Option(..., "--api", help="an operator's API URL"),
    rpc: str = typer.Option(..., "--rpc", help="a JSON-RPC URL of the chain"),
    manifest: str = typer.Option(..., "--manifest", help=MANIFEST_HELP),
    trader: str = typer.Option(None, "--trader", help="the trader's address (or give its key)"),
    token: str = typer.Option(None, "--token", help="collateral token (default: the manifest's first)"),
    keystore: str = typer.Option(None, "--keystore"),
    ape_account: str = typer.Option(None, "--ape-account"),
    save: str = typer.Option(None, "--save", help="write the proof document here (for a later claim or escape)"),
) -> None:
    """Where a trader's withdrawals stand: executed (withdrawable), checkpointed (recorded on-chain), claimed, claimable."""
    from eth_account import Account
    from eth_utils import is_address

    try:
        m = _manifest(manifest)
        token_address = _token(m, token)
        if trader is None:
            trader = Account.from_key(_key(keystore, ape_account)).address
        if not is_address(trader):
            raise CommandError(f"--trader {trader!r} is not an address")
    except CommandError as exc:
        _fail(exc)

    async def go(settlement):
        status = await settlement.status(trader, token_address)
        typer.echo(f"trader {status.trader}, token {status.token}")
        typer.echo(f"  executed:      cumulative withdrawable {status.executed} (engine state now)")
        if status.document is None:
            typer.echo("  checkpointed:  no checkpoint recorded on-chain yet")
            return
        typer.echo(f"  checkpointed:  {status.checkpointed} in epoch {status.epoch} "
                   f"({'recorded on-chain' if status.recorded else 'not recorded yet'}; latest recorded epoch {status.latest_recorded})")
        typer.echo(f"  claimed:       {status.claimed}")
        typer.echo(f"  claimable now: {status.claimable}")
        if save:
            Path(save).write_text(json.dumps(status.document, indent=1))
            typer.echo(f"  proof saved to {save}")

    _settled(api, rpc, m, go)


# ---- withdraw claim --------------------------------------------------------------------------------------------


@withdraw_app.command("claim")
def withdraw_claim(
    rpc: str = typer.Option(..., "--rpc", help="a JSON-RPC URL of the chain"),
    manifest: str = typer.Option(..., "--manifest", help=MANIFEST_HELP),
    api: list[str] = typer.Option(None, "--api", help="an operator's API URL (or --proof FILE)"),
    proof_file: str = typer.Option(None, "--proof", help="a proof document saved by `withdraw status --save`"),
    trader: str = typer.Option(None, "--trader", help="claim for this trader (default: the key's address)"),
    token: str = typer.Option(None, "--token"),
    keystore: str = typer.Option(None, "--keystore", help="pays the gas (anyone may relay a claim)"),
    ape_account: str = typer.Option(None, "--ape-account"),
    wait: float = typer.Option(120.0, "--wait", help="seconds to wait for the proof's epoch to be recorded"),
) -> None:
    """Fetch the proof for the latest recorded checkpoint and send the claim; prints what was received."""
    from eth_account import Account

    from ..client.claims import LeafProof, Sender

    try:
        m = _manifest(manifest)
        key = _key(keystore, ape_account)
        trader = trader or Account.from_key(key).address
        token_address = _token(m, token)
        if not api and not proof_file:
            raise CommandError("give --api URL or --proof FILE")
    except CommandError as exc:
        _fail(exc)

    async def go(settlement):
        if proof_file:
            proof = LeafProof.from_api(json.loads(Path(proof_file).read_text()), trader, token_address)
        else:
            proof = await settlement.claimable_proof(trader, token_address, wait)
        if proof is None:
            typer.echo(f"nothing to claim: everything {trader} withdrew of {token_address} was already paid")
            return
        payout = settlement.claim(proof, Sender.from_key(key))
        if payout.tx_hash is None:
            typer.echo(f"nothing to claim: {trader} already received its cumulative {proof.amount} (epoch {proof.epoch})")
            return
        typer.echo(f"claimed against epoch {proof.epoch}: paid {payout.paid} to {trader} (tx 0x{payout.tx_hash.hex()}); "
                   f"balance {payout.trader_balance_before} -> {payout.trader_balance_after}"
                   + (f"; {payout.unpaid} above the rate limit stays claimable" if payout.unpaid else ""))

    _settled(api, rpc, m, go)


# ---- force ------------------------------------------------------------------------------------------------------


def _forced(rpc: str, manifest: str, keystore: str | None, ape_account: str | None, build, api: list[str] | None = None):
    """Send the forced request `await build(settlement, trader address)` returns, signed for L1 by the trader's key."""
    from eth_account import Account

    from ..client.claims import Sender

    try:
        m = _manifest(manifest)
        key = _key(keystore, ape_account)
    except CommandError as exc:
        _fail(exc)
    trader = Account.from_key(key).address

    async def go(settlement):
        request = await build(settlement, m, trader)
        submitted = settlement.force(request, Sender.from_key(key))
        typer.echo(f"forced request {submitted.seq} ({type(request).__name__}) in block {submitted.block_number}, "
                   f"tx 0x{submitted.tx_hash.hex()}")
        typer.echo(f"the operators must take it: a checkpoint covering it is recorded by {submitted.deadline} "
                   f"(unix time), or anyone may freeze the exchange (`ddx escape`)")

    _settled(api, rpc, m, go)


@force_app.command("withdraw")
def force_withdraw(
    amount: int = typer.Option(..., "--amount", help="token base units"),
    rpc: str = typer.Option(..., "--rpc", help="a JSON-RPC URL of the chain"),
    manifest: str = typer.Option(..., "--manifest", help=MANIFEST_HELP),
    token: str = typer.Option(None, "--token", help="collateral token (default: the manifest's first)"),
    strategy: str = typer.Option("main", "--strategy"),
    keystore: str = typer.Option(None, "--keystore", help="the trader's key (sends the transaction)"),
    ape_account: str = typer.Option(None, "--ape-account"),
) -> None:
    """A withdraw intent through L1; claim it with `ddx withdraw claim` once a checkpoint covering it is recorded."""
    from ..protocol import requests as pr

    if amount <= 0:
        _fail(CommandError("--amount must be positive"))

    async def build(settlement, m, trader):
        return pr.WithdrawIntent(bytes.fromhex(trader[2:]), pr.strategy_id(strategy),
                                 bytes.fromhex(_token(m, token)[2:]), amount, 0, 0)

    _forced(rpc, manifest, keystore, ape_account, build)


@force_app.command("cancel-all")
def force_cancel_all(
    rpc: str = typer.Option(..., "--rpc", help="a JSON-RPC URL of the chain"),
    manifest: str = typer.Option(..., "--manifest", help=MANIFEST_HELP),
    market: str = typer.Option(None, "--market", help="e.g. ETHP (default: every market)"),
    strategy: str = typer.Option("main", "--strategy"),
    keystore: str = typer.Option(None, "--keystore"),
    ape_account: str = typer.Option(None, "--ape-account"),
) -> None:
    """Cancel every open order of the strategy (in one market, or all) through L1."""
    from ..protocol import requests as pr

    async def build(settlement, m, trader):
        market_id = pr.market_id(market) if market else b"\0" * 32
        return pr.CancelAll(bytes.fromhex(trader[2:]), pr.strategy_id(strategy), market_id, 0, 0)

    _forced(rpc, manifest, keystore, ape_account, build)


@force_app.command("close")
def force_close(
    market: str = typer.Option(..., "--market", help="e.g. ETHP"),
    rpc: str = typer.Option(..., "--rpc", help="a JSON-RPC URL of the chain"),
    manifest: str = typer.Option(..., "--manifest", help=MANIFEST_HELP),
    api: list[str] = typer.Option(None, "--api", help="an operator's or replica's API: read the position to close"),
    side: str = typer.Option(None, "--side", help="buy or sell (default: against the position read from --api)"),
    size: int = typer.Option(None, "--size", help="contracts in base units (default: the whole position)"),
    strategy: str = typer.Option("main", "--strategy"),
    keystore: str = typer.Option(None, "--keystore"),
    ape_account: str = typer.Option(None, "--ape-account"),
) -> None:
    """A reduce-only market order through L1 that closes the position (or `--size` of it)."""
    from ..protocol import requests as pr

    if side is not None and side not in ("buy", "sell"):
        _fail(CommandError("--side is buy or sell"))
    if (side is None or size is None) and not api:
        _fail(CommandError("give --api URL to read the position, or both --side and --size"))

    async def build(settlement, m, trader):
        market_id, strategy_id = pr.market_id(market), pr.strategy_id(strategy)
        order_side, order_size = side, size
        if order_side is None or order_size is None:
            held = await settlement.position(trader, market_id, strategy_id)
            if held == 0:
                raise CommandError(f"{trader} has no {market} position in strategy {strategy!r}")
            order_side = order_side or ("sell" if held > 0 else "buy")
            order_size = order_size or abs(held)
        return pr.PlaceOrder(bytes.fromhex(trader[2:]), strategy_id, market_id,
                             pr.Side.SELL if order_side == "sell" else pr.Side.BUY, pr.OrderType.MARKET, 0, order_size,
                             True, 0, 0)

    _forced(rpc, manifest, keystore, ape_account, build, api)


@force_app.command("status")
def force_status(
    rpc: str = typer.Option(..., "--rpc", help="a JSON-RPC URL of the chain"),
    manifest: str = typer.Option(..., "--manifest", help=MANIFEST_HELP),
) -> None:
    """The inbox as the contract has it: entries, what recorded checkpoints cover, and when anyone may freeze."""
    m = None
    try:
        m = _manifest(manifest)
    except CommandError as exc:
        _fail(exc)

    async def go(settlement):
        status = settlement.inbox_status()
        typer.echo(json.dumps(status, indent=1))

    _settled(None, rpc, m, go)


# ---- escape ----------------------------------------------------------------------------------------------------


def escape(
    rpc: str = typer.Option(..., "--rpc", help="a JSON-RPC URL of the chain"),
    manifest: str = typer.Option(..., "--manifest", help=MANIFEST_HELP),
    api: list[str] = typer.Option(None, "--api", help="an operator's API URL: fetch both proofs of the last checkpoint"),
    balance_proof: str = typer.Option(None, "--balance-proof", help="or the BALANCE proof document of the last checkpoint"),
    withdrawal_proof: str = typer.Option(None, "--withdrawal-proof", help="and the WITHDRAWAL proof document, if any"),
    trader: str = typer.Option(None, "--trader"),
    token: str = typer.Option(None, "--token"),
    keystore: str = typer.Option(None, "--keystore", help="pays the gas"),
    ape_account: str = typer.Option(None, "--ape-account"),
) -> None:
    """After the escape delay with no checkpoint: freeze the exchange (if due) and withdraw the balance proven in the
    last checkpoint, the deposits it had not credited and any unclaimed withdrawable. The proofs come from an
    operator's API (`--api`: GET /v1/proofs/balance|withdrawal/… for the contract's last epoch) or from documents
    saved from it while operators were still up (`--balance-proof`, `--withdrawal-proof`). A pair without a BALANCE
    leaf escapes with its non-inclusion proof; before any checkpoint no proof is needed."""
    from eth_account import Account

    from ..client.claims import Sender

    try:
        m = _manifest(manifest)
        key = _key(keystore, ape_account)
        trader = trader or Account.from_key(key).address
        token_address = _token(m, token)
        documents = None
        if not api:
            read = lambda path: json.loads(Path(path).read_text()) if path else None  # noqa: E731
            documents = (read(balance_proof), read(withdrawal_proof))
    except (CommandError, OSError, ValueError) as exc:
        _fail(exc)

    async def go(settlement):
        if documents is None:
            balance, withdrawal = await settlement.escape_proofs(trader, token_address)
        else:
            if documents[0] is None and settlement.exchange.functions.latest_epoch().call() != 0:
                raise CommandError(f"give --api URL or --balance-proof FILE: the last checkpoint is epoch "
                                   f"{settlement.exchange.functions.latest_epoch().call()}")
            balance, withdrawal = settlement.proofs_from_documents(trader, token_address, *documents)
        payout = settlement.escape(balance, withdrawal, Sender.from_key(key))
        typer.echo(f"escaped: paid {payout.paid} to {trader} (tx 0x{payout.tx_hash.hex()}); "
                   f"balance {payout.trader_balance_before} -> {payout.trader_balance_after}"
                   + (f"; {payout.unpaid} above the rate limit stays owed" if payout.unpaid else ""))

    _settled(api, rpc, m, go)


# ---- audit -----------------------------------------------------------------------------------------------------


def audit(
    rpc: str = typer.Option(..., "--rpc", help="your own JSON-RPC URL of the chain"),
    manifest: str = typer.Option(..., "--manifest", help=MANIFEST_HELP),
    genesis: str = typer.Option(..., "--genesis", help="the engine genesis file the operators use"),
    log_url: str = typer.Option(None, "--log-url", help="an operator's API URL: replay its public request log"),
    history: str = typer.Option(None, "--history", help="or a node's history database (SQLite)"),
) -> None:
    """Replay the request log through the engine and check every checkpoint root recorded on-chain, and every
    sequenced chain block against your RPC. Exit 0 when all agree, 1 otherwise."""
    import aiohttp

    from ..chain.rpc import Web3ChainRpc, http_web3
    from ..daemon.config import ConfigError
    from ..deployment.artifacts import shipped_abi
    from ..deployment.genesis import load_genesis
    from ..replica.audit import Replay, log_from_api, log_from_history
    from ..replica.audit import audit as run_audit

    try:
        m = _manifest(manifest)
        if (log_url is None) == (history is None):
            raise CommandError("give exactly one of --log-url URL or --history PATH")
        replay = Replay(_domains(m), load_genesis(Path(genesis)))
    except (CommandError, ConfigError) as exc:
        _fail(exc)

    async def go() -> bool:
        if log_url is not None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                async for log_index, entry in log_from_api(session, log_url):
                    replay.apply(log_index, entry)
        else:
            for log_index, entry in log_from_history(history):
                replay.apply(log_index, entry)
        rpc_client = Web3ChainRpc(http_web3(rpc), m.exchange, shipped_abi("Exchange"))
        try:
            report = await run_audit(rpc_client, replay, m.deployment_block)
        finally:
            await rpc_client.close()
        for line in report.lines():
            typer.echo(line)
        return report.ok

    if not _run(go()):
        raise typer.Exit(1)
