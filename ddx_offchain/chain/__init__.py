"""Ethereum side: contract bindings from compiled artifacts, deposit watcher, checkpoint relay."""
