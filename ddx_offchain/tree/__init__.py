"""Authenticated state tree (compact sparse Merkle tree) and its proofs. Pure."""
