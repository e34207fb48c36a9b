# pragma version ~=0.4.3
"""
@title ddx exchange
@notice The one deployed contract: custody of traders' collateral, checkpoints of the off-chain state signed by
        a quorum of operators, withdrawal claims proven against them, rate limits, delayed governance by quorum
        message, forced requests from L1, and an escape hatch when operators stop or censor. See docs/contracts.md
        for the interface and the trust model, docs/protocol.md for every signed and proven byte.
@dev Composed of modules, one per concern. No owner key: every privileged change is a quorum message.
"""

from contracts.modules import quorum
from contracts.modules import inbox
from contracts.modules import checkpoints
from contracts.modules import custody
from contracts.modules import forced
from contracts.modules import governance

initializes: quorum
initializes: inbox
initializes: checkpoints[quorum := quorum, inbox := inbox]
initializes: custody[checkpoints := checkpoints, inbox := inbox]
initializes: forced[checkpoints := checkpoints, inbox := inbox]
initializes: governance[quorum := quorum, checkpoints := checkpoints, custody := custody]

exports: (
    quorum.operator_set_id,
    quorum.threshold,
    quorum.operator_set_commitment,
    quorum.supermajority_required,
    quorum.operators,
    quorum.operator_set,
    checkpoints.checkpoint_root,
    checkpoints.latest_epoch,
    checkpoints.last_checkpoint_at,
    checkpoints.frozen,
    checkpoints.escape_delay,
    checkpoints.forced_deadline,
    checkpoints.inbox_coverage,
    checkpoints.latest_checkpoint,
    checkpoints.submit_checkpoint,
    checkpoints.submit_checkpoint_with_leaves,
    checkpoints.freeze,
    custody.collateral_allowed,
    inbox.inbox_head,
    inbox.deposit_count,
    inbox.forced_count,
    forced.force_request,
    custody.claimed,
    custody.deposited,
    custody.escaped,
    custody.rate_limit,
    custody.available_to_pay,
    custody.deposit,
    custody.deposit_to,
    custody.claim,
    custody.escape,
    governance.governance_nonce,
    governance.pending_change,
    governance.governance_delay,
    governance.announce_rotation,
    governance.execute_rotation,
    governance.announce_threshold,
    governance.execute_threshold,
    governance.announce_collateral,
    governance.execute_collateral,
    governance.announce_rate_limit,
    governance.execute_rate_limit,
    governance.cancel_change,
)

MAX_INITIAL_TOKENS: constant(uint256) = 16
# A change must wait at least this many forced deadlines: a user who sees it announced forces its exit at once,
# which is covered (and claimable) within two deadlines or lets anyone freeze, and freezing stops every change;
# the third deadline is the user's time to notice and act (docs/contracts.md, "Governance and exits").
EXIT_WINDOW_DEADLINES: constant(uint256) = 3


struct InitialCollateral:
    token: address
    capacity: uint256
    period: uint256


@deploy
def __init__(
    operators: DynArray[address, quorum.MAX_OPERATORS],
    threshold: uint256,
    supermajority_required: bool,
    collateral: DynArray[InitialCollateral, MAX_INITIAL_TOKENS],
    escape_delay: uint256,
    forced_deadline: uint256,
    governance_delay: uint256,
):
    """
    @param operators The initial operator set, strictly ascending.
    @param threshold Signatures needed; strictly above 2/3 of the set when `supermajority_required`.
    @param supermajority_required Enforce the > 2/3 threshold rule now and at every change (the default: true).
    @param collateral The initial allow-list, each token with its rate limit (capacity per period seconds).
    @param escape_delay Seconds without a checkpoint after which anyone may freeze (default 7 days).
    @param forced_deadline Seconds an inbox entry (deposit, forced request) may wait for a covering checkpoint
           before anyone may freeze (default 1 day).
    @param governance_delay Seconds between a change's announcement and its execution; at least
           EXIT_WINDOW_DEADLINES × forced_deadline.
    """
    quorum.__init__(operators, threshold, supermajority_required)
    checkpoints.__init__(escape_delay, forced_deadline)
    governance.__init__(governance_delay)
    assert governance_delay >= EXIT_WINDOW_DEADLINES * forced_deadline, "exchange: governance delay shorter than the exit window"
    for entry: InitialCollateral in collateral:
        custody._set_rate_limit(entry.token, entry.capacity, entry.period)
        custody._set_collateral(entry.token, True)
