"""Sidecar (processors/) tests."""
