"""Where signing keys come from: an encrypted keystore file, an environment variable, or (on dev
chains only) the deterministic dev accounts. Never a command-line argument, never a log line."""

from __future__ import annotations

import getpass
import json
import os
import secrets
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from derelay.trainer.chain import DEV_CHAIN_IDS
from derelay.trainer.errors import KeyStoreError
from derelay.trainer.limits import loads_json, read_prefix

KEY_ENV = "DERELAY_PRIVATE_KEY"
PASSWORD_ENV = "DERELAY_KEYSTORE_PASSWORD"
_MAX_KEYSTORE_BYTES = 64 * 1024  # a V3 keystore is about 500 bytes
# The mnemonic `ganache --wallet.deterministic` uses; its accounts are public knowledge, which is
# why they may sign only on dev chain ids.
DEV_MNEMONIC = "myth like bonus scare over problem client lizard pioneer submit female collect"

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    """Dev account `index` of the deterministic mnemonic (ganache's account `index`)."""
    if not 0 <= index < 1000:
        raise KeyStoreError(f"dev account index {index} is out of range: use 0 to 999")
    account: LocalAccount = Account.from_mnemonic(
        DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
    )
    return account


def load_account(
    chain_id: int,
    keystore: Path | None = None,
    dev_index: int | None = None,
    environ: dict[str, str] | None = None,
) -> LocalAccount:
    """The signing account: a keystore file, else $DERELAY_PRIVATE_KEY, else a dev account.

    A keystore's password comes from $DERELAY_KEYSTORE_PASSWORD or, on a terminal, a prompt.
    Dev accounts are refused unless `chain_id` is a dev chain's.
    """
    env = os.environ if environ is None else environ
    if keystore is not None:
        return _from_keystore(keystore, env)
    if env.get(KEY_ENV):
        try:
            account: LocalAccount = Account.from_key(env[KEY_ENV].strip())
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(
                f"${KEY_ENV} is not a valid private key (64 hex digits): fix or unset it"
            ) from exc
        return account
    if dev_index is not None:
        if chain_id not in DEV_CHAIN_IDS:
            raise KeyStoreError(
                f"dev accounts are public and may sign only on dev chains, not chain {chain_id}: "
                f"use a keystore file or ${KEY_ENV}",
                setting="keystore",
            )
        return dev_account(dev_index)
    raise KeyStoreError(
        f"no signing key: give a keystore file, set ${KEY_ENV}, or on a dev chain a dev account",
        setting="keystore",
    )


def _from_keystore(path: Path, env: os._Environ[str] | dict[str, str]) -> LocalAccount:
    try:
        data = read_prefix(path, _MAX_KEYSTORE_BYTES)
        document = loads_json(data) if len(data) <= _MAX_KEYSTORE_BYTES else None
    except FileNotFoundError as exc:
        raise KeyStoreError(
            f"keystore {path} does not exist: check the path, or create a keystore there",
            setting="keystore",
        ) from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise KeyStoreError(
            f"keystore {path} is not a readable JSON keystore: check the path"
        ) from exc
    if not isinstance(document, dict):
        raise KeyStoreError(f"keystore {path} is not a JSON keystore object: check the path")
    password = env.get(PASSWORD_ENV)
    if password is None:
        if not os.isatty(0):
            raise KeyStoreError(f"keystore {path} needs a password: set ${PASSWORD_ENV}")
        password = getpass.getpass(f"password for {path}: ")
    try:
        key = Account.decrypt(document, password)
    except ValueError as exc:
        raise KeyStoreError(f"wrong password for keystore {path}: try again") from exc
    except (KeyError, TypeError) as exc:
        raise KeyStoreError(
            f"keystore {path} is malformed: it is not an Ethereum V3 keystore"
        ) from exc
    account: LocalAccount = Account.from_key(key)
    return account


def create_keystore(path: Path, password: str) -> str:
    """Write a new encrypted keystore (mode 0600, never overwriting); return its address."""
    if not password:
        raise KeyStoreError("an empty keystore password is refused: choose one")
    if path.exists():
        raise KeyStoreError(f"{path} already exists: choose another path; nothing was overwritten")
    key = "0x" + secrets.token_hex(32)
    document = Account.encrypt(key, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return str(Account.from_key(key).address)
