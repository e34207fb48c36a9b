"""Local developer networks. `ddx devnet --demo` runs the settlement walk-through on the embedded chain."""
