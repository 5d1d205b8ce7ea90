"""Deploying the contract and finding it again: `deployments/<chainId>.json`."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_utils import is_address
from web3 import Web3

from derelay.trainer.chain import ChainClient, chain_id
from derelay.trainer.contract import ARTIFACTS_DIR, DeRelayContract
from derelay.trainer.errors import DeploymentError, one_line
from derelay.trainer.limits import loads_json, read_prefix

DEPLOYMENTS_DIR = Path(os.environ.get("DERELAY_DEPLOYMENTS", "deployments"))
_MAX_RECORD_BYTES = 64 * 1024  # a record is about 400 bytes


@dataclass(frozen=True)
class Deployment:
    """Where the contract lives on one chain, and how it got there."""

    chain_id: int
    address: str
    deployer: str
    block: int
    tx_hash: str
    bytecode_sha256: str


def deploy_contract(
    client: ChainClient, directory: Path = DEPLOYMENTS_DIR
) -> tuple[DeRelayContract, Deployment]:
    """Deploy DeRelay with `client` and write the deployment record (atomically)."""
    contract = DeRelayContract.deploy(client)
    receipt = contract.deploy_receipt
    assert receipt is not None
    artifact = json.loads((ARTIFACTS_DIR / "DeRelay.json").read_text())
    record = Deployment(
        chain_id=chain_id(client.w3),
        address=contract.address,
        deployer=client.address,
        block=int(receipt["blockNumber"]),
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        bytecode_sha256=hashlib.sha256(bytes.fromhex(artifact["bytecode"][2:])).hexdigest(),
    )
    write_deployment(record, directory)
    return contract, record


def write_deployment(record: Deployment, directory: Path = DEPLOYMENTS_DIR) -> Path:
    """Write `deployments/<chainId>.json` atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record.chain_id}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load_deployment(w3: Web3, directory: Path = DEPLOYMENTS_DIR) -> Deployment:
    """The deployment record for the chain `w3` is connected to; records are shared, so it is
    read as untrusted input."""
    cid = chain_id(w3)
    path = directory / f"{cid}.json"
    try:
        record = Deployment(**loads_json(read_prefix(path, _MAX_RECORD_BYTES)))
    except (FileNotFoundError, NotADirectoryError):
        raise DeploymentError(
            f"no deployment for chain {cid} in {directory}/: deploy the contract on this chain "
            "first, or point to the folder that holds its record",
            setting="deployments",
        ) from None
    except OSError as exc:  # a name too long, a folder where the record should be, ...
        raise DeploymentError(
            f"cannot read {one_line(str(path), 160)}: {exc.strerror}; check the deployments folder",
            setting="deployments",
        ) from None
    except (ValueError, TypeError) as exc:
        raise DeploymentError(f"{path} is not a valid deployment record: deploy again") from exc
    if record.chain_id != cid:
        raise DeploymentError(f"{path} does not name chain {cid}: deploy again")
    if not (isinstance(record.address, str) and is_address(record.address)):
        raise DeploymentError(f"{path} names no contract address: deploy again")
    return record
