"""What a deployment is made of: compiled artifacts, the deploy steps, the manifest it writes, the engine genesis, the embedded chain."""
