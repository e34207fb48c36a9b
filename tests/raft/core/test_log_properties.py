"""Property test: the log view (stable storage + unstable tail) always equals a plain list model.

Random sequences of follower appends (with conflicts), persistence of what a Ready hands out, compaction and
commit moves; after each operation every readable index must give the model's term, entries must round-trip, and
committed entries must never change. More examples: DDX_RAFT_LOG_EXAMPLES=5000.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddx_offchain.raft.core.log import RaftLog
from ddx_offchain.raft.messages import ConfState, Entry
from ddx_offchain.raft.storage import MemoryStorage

EXAMPLES = int(os.environ.get("DDX_RAFT_LOG_EXAMPLES", "150"))

operation = st.one_of(
    st.tuples(st.just("append"), st.integers(0, 12), st.integers(1, 4), st.integers(0, 3)),
    st.tuples(st.just("persist")),
    st.tuples(st.just("commit"), st.integers(0, 30)),
    st.tuples(st.just("compact"), st.integers(0, 30)),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=40))
def test_log_view_matches_a_list_model(ops):
    storage = MemoryStorage(ConfState(voters=(1,)))
    log = RaftLog(storage)
    model: list[int] = [0]  # model[i] = term at index i; index 0 is the empty start
    term = 1
    for op in ops:
        kind = op[0]
        if kind == "append":
            _, back, count, term_step = op
            term += term_step
            prev = max(log.committed, log.last_index() - back, 0)
            entries = tuple(Entry(term=term, index=prev + 1 + k, data=b"%d" % term) for k in range(count))
            result = log.maybe_append(prev, model[prev], log.committed, entries)
            assert result is not None and result[0] == prev + count
            # Raft keeps a matching suffix (a stale or duplicated append must not cut the log short) and
            # replaces from the first conflicting entry on.
            for e in entries:
                if e.index < len(model) and model[e.index] == e.term:
                    continue
                del model[e.index :]
                model.append(e.term)
        elif kind == "persist":
            pending = log.unstable_entries()
            if pending:
                storage.append(pending)
                log.stable_to(pending[-1].index, pending[-1].term)
            assert not log.has_unstable_entries()
        elif kind == "commit":
            target = min(op[1], log.last_index())
            before = log.committed
            log.commit_to(target)
            assert log.committed == max(before, target)
        else:  # compact what is both committed and persisted (an application only snapshots applied entries)
            upto = min(op[1], log.committed, log.unstable.offset - 1)
            if upto >= storage.first_index():
                storage.create_snapshot(upto, ConfState(voters=(1,)), b"")
                storage.compact(upto)
        assert log.last_index() == len(model) - 1
        for i in range(log.first_index() - 1, log.last_index() + 1):
            assert log.term(i) == model[i], (i, model)
        if log.last_index() >= log.first_index():
            got = log.slice(log.first_index(), log.last_index() + 1)
            assert [e.term for e in got] == model[log.first_index() :]
            assert [e.index for e in got] == list(range(log.first_index(), log.last_index() + 1))
