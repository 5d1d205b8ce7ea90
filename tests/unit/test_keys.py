"""Keys come from a keystore, an environment variable or (dev chains only) the dev mnemonic."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from derelay.trainer.errors import KeyStoreError
from derelay.trainer.keys import KEY_ENV, PASSWORD_ENV, create_keystore, dev_account, load_account

GANACHE_ACCOUNT_0 = "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"


def test_dev_account_zero_is_ganaches_deterministic_account_zero():
    assert dev_account(0).address == GANACHE_ACCOUNT_0


def test_dev_accounts_are_refused_on_a_public_chain():
    with pytest.raises(KeyStoreError, match="dev chains"):
        load_account(chain_id=1, dev_index=0, environ={})


def test_dev_accounts_are_allowed_on_ganache():
    assert load_account(chain_id=1337, dev_index=0, environ={}).address == GANACHE_ACCOUNT_0


def test_keystore_round_trip_with_password_from_environment(tmp_path):
    # prepare
    path = tmp_path / "key.json"
    address = create_keystore(path, "correct horse")

    # act
    account = load_account(1, keystore=path, environ={PASSWORD_ENV: "correct horse"})

    # check
    assert account.address == address
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "crypto" in json.loads(path.read_text())


def test_wrong_keystore_password_is_one_clear_error(tmp_path):
    path = tmp_path / "key.json"
    create_keystore(path, "right")
    with pytest.raises(KeyStoreError, match="wrong password"):
        load_account(1, keystore=path, environ={PASSWORD_ENV: "wrong"})


def test_existing_keystore_is_never_overwritten(tmp_path):
    path = tmp_path / "key.json"
    create_keystore(path, "one")
    before = path.read_bytes()
    with pytest.raises(KeyStoreError, match="already exists"):
        create_keystore(path, "two")
    assert path.read_bytes() == before


def test_missing_keystore_and_bad_env_key_are_clear(tmp_path):
    with pytest.raises(KeyStoreError, match="does not exist"):
        load_account(1, keystore=tmp_path / "nope.json", environ={PASSWORD_ENV: "x"})
    with pytest.raises(KeyStoreError, match="not a valid private key"):
        load_account(1, environ={KEY_ENV: "0x1234"})
    with pytest.raises(KeyStoreError, match="no signing key"):
        load_account(1, environ={})


def test_env_key_is_used_on_any_chain():
    key = "0x" + "11" * 32
    assert load_account(1, environ={KEY_ENV: key}).key.hex().endswith("11" * 32)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"[1]", "not a JSON keystore object"), (b"[" * 60_000, "not a readable JSON keystore")],
)
def test_a_keystore_that_is_not_an_object_is_a_keystore_error(tmp_path, content, fragment):
    # prepare: JSON of the wrong shape; the deep one would overflow the C parser's stack
    path = tmp_path / "me.json"
    path.write_bytes(content)

    # act, check
    with pytest.raises(KeyStoreError, match=fragment):
        load_account(1, path, environ={PASSWORD_ENV: "pw"})


def test_an_endless_keystore_file_is_not_read_to_its_end():
    # /dev/zero never ends: reading it whole used to hang and exhaust memory
    with pytest.raises(KeyStoreError, match="not a JSON keystore object"):
        load_account(1, Path("/dev/zero"), environ={PASSWORD_ENV: "pw"})
