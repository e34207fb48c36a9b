"""Raft server processes on loopback with a control port and a load generator (tests and benchmarks/raft.py)."""
