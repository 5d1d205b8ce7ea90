"""Deployment records are shared between people: a bad one, or a bad --deployments path, is one
DeploymentError that says what to do."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from derelay.deploy.deployer import Deployment, load_deployment, write_deployment
from derelay.trainer.chain import chain_id
from derelay.trainer.errors import DeploymentError


@pytest.fixture
def record(chain) -> Deployment:
    return Deployment(chain_id(chain.w3), "0x" + "5a" * 20, "0x" + "01" * 20, 1, "0x00", "00")


def test_a_written_record_reads_back(chain, record, tmp_path):
    write_deployment(record, tmp_path)
    assert load_deployment(chain.w3, tmp_path) == record


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"[1]", "is not a valid deployment record"),
        (b"[" * 50_000, "is not a valid deployment record"),
        (b'{"chain_id": 1}', "is not a valid deployment record"),
        ({"chain_id": "1"}, "does not name chain"),
        ({"address": "0x1234"}, "names no contract address"),
        ({"address": 5}, "names no contract address"),
    ],
)
def test_a_bad_record_is_a_deployment_error(chain, record, tmp_path, content, fragment):
    # prepare: the record's file holds other bytes, or the record with fields changed
    path = tmp_path / f"{record.chain_id}.json"
    if isinstance(content, dict):
        content = json.dumps(asdict(record) | content).encode()
    path.write_bytes(content)

    # act, check
    with pytest.raises(DeploymentError, match=fragment):
        load_deployment(chain.w3, tmp_path)


@pytest.mark.parametrize("name", ["x" * 5000, "folder"])
def test_an_unreadable_deployments_path_is_a_deployment_error(chain, record, tmp_path, name):
    # A name over the system's limit used to escape as OSError from Path.exists().
    (tmp_path / "folder" / f"{record.chain_id}.json").mkdir(parents=True)
    with pytest.raises(DeploymentError, match="cannot read .*; check the deployments folder"):
        load_deployment(chain.w3, tmp_path / name)
