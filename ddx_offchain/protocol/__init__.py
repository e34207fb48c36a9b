"""The one place where both sides of the wire agree: EIP-712 types, item keys, leaf encodings, hashing.

Pure: no I/O, no clock. Specified byte-for-byte in docs/protocol.md.
"""
