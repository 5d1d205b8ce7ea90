"""`derelay account`: signing accounts."""

from __future__ import annotations

import os
from pathlib import Path

import click

from derelay.trainer.keys import create_keystore


@click.group()
def account() -> None:
    """Signing accounts."""


@account.command("new")
@click.option("--keystore", type=click.Path(path_type=Path, dir_okay=False), required=True)
def account_new(keystore: Path) -> None:
    """Create an encrypted keystore; the password comes from $DERELAY_KEYSTORE_PASSWORD or a prompt."""
    password = os.environ.get("DERELAY_KEYSTORE_PASSWORD") or click.prompt(
        "new keystore password", hide_input=True, confirmation_prompt=True
    )
    address = create_keystore(keystore, password)
    click.echo(f"created {keystore} for {address}")
