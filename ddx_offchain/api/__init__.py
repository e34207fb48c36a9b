"""HTTP and WebSocket API for traders and operators."""
