"""Harnesses for tests and benchmarks, not used by the product: Raft server processes and the deterministic simulator."""
