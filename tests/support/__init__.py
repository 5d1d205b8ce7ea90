"""Test support shared by the suites: fuzz generators, garbage RPC nodes."""
