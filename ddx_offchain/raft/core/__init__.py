"""The pure Raft state machine: no I/O, no clock, no OS randomness. Driven through ddx_offchain.raft.rawnode."""
