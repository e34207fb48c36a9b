"""Trader SDK: sign requests, read receipts and updates, fetch proofs, claim."""
