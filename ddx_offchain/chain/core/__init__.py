"""What the chain side decides, as pure functions and state machines: no web3, no I/O, no clock (every time is an argument)."""
