"""The `derelay` command: one module per command group, registered on the root group."""
