"""Marketplace adapters: one module per marketplace, sharing `http` and `base`."""
