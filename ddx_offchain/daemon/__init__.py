"""The `ddx node` process: reads its config and keys, assembles node + Raft + chain side + API, runs until signalled."""
