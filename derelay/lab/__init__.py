"""Relays run for study: the embedded-chain harness, the contract mirror, simulation, review sweep and demo."""
