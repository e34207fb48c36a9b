"""One operator process: wires raft, engine, checkpointing and the API."""
