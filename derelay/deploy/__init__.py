"""Compiling the contracts, deploying them and publishing tasks."""
