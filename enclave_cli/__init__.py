"""The `enclave` command line: thin wrappers over the pure core."""
