"""Raft consensus: pure state machine, durable log, transport, asyncio runtime."""
