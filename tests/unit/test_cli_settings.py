"""The core names settings, the CLI names its options: every setting the core can blame has an
option the user can actually pass, and the one-line error names it."""

from __future__ import annotations

import re
from pathlib import Path

import click

from derelay.cli.main import OPTION_OF_SETTING, cli, main
from derelay.trainer.errors import ChainError

PACKAGE = Path(__file__).resolve().parents[2] / "derelay"


def every_option(group: click.Group) -> set[str]:
    found: set[str] = {o for p in group.params for o in getattr(p, "opts", [])}
    for command in group.commands.values():
        if isinstance(command, click.Group):
            found |= every_option(command)
        else:
            found |= {o for p in command.params for o in getattr(p, "opts", [])}
    return found


def test_every_setting_the_core_names_is_an_option_of_the_cli():
    # prepare: the settings the core's errors name, and the CLI's options
    named = {
        m
        for path in PACKAGE.rglob("*.py")
        for m in re.findall(r'setting="([a-z_]+)"', path.read_text())
    }
    options = every_option(cli)

    # check
    assert named and named <= set(OPTION_OF_SETTING)
    for setting, text in OPTION_OF_SETTING.items():
        assert set(re.findall(r"--[a-z-]+", text)) <= options, setting


def test_the_one_line_error_names_the_option(monkeypatch, capsys):
    # prepare: a command whose core call fails on the chain setting
    def fail(*_args: object, **_kwargs: object) -> None:
        raise ChainError("no chain at http://127.0.0.1:1: start a chain there", setting="rpc")

    monkeypatch.setattr("derelay.cli.query.open_contract", fail)

    # act
    try:
        main(["status", "1"])
    except SystemExit as exc:
        status = exc.code

    # check
    assert status == 1
    assert capsys.readouterr().err == (
        "error: no chain at http://127.0.0.1:1: start a chain there (option --rpc)\n"
    )
