"""DeRelayL: decentralized relay learning (the package users install).

Floors, each importing only from the ones before it: `trainer` (the worker's core), `deploy`
(compile, deploy, publish tasks), `lab` (relays run for study: harness, simulation, demo),
`dashboard` (the read-only web view), `cli` (the `derelay` command on top).
"""
