"""End-to-end tests of the Collector and the native stack."""
