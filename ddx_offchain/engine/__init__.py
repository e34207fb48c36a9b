"""Deterministic perpetual-futures exchange engine. Pure: no clock, no I/O, integers only."""
