"""The committed artifacts are exactly what the pinned compiler makes of the sources."""

from __future__ import annotations

from derelay.deploy import build


def test_recompiling_gives_byte_identical_artifacts():
    # prepare
    output = build.compile_contracts()

    # act
    fresh = build.artifacts_from(output)

    # check
    assert set(fresh) == {"DeRelay", "ReentrantWithdrawer", "RevertingReceiver"}
    for name, document in fresh.items():
        committed = (build.ARTIFACTS_DIR / f"{name}.json").read_text()
        assert committed == build.render(document), f"{name}.json is stale: run `derelay compile`"
    build_info = (build.ARTIFACTS_DIR / "build-info.json").read_text()
    assert build_info == build.render(
        {"solcVersion": build.SOLC_VERSION, "input": build.standard_input()}
    )


def test_runtime_code_fits_the_contract_size_limit():
    # prepare
    artifact = build.load_artifact("DeRelay")

    # act
    size = (len(artifact.deployed_bytecode) - 2) // 2

    # check: EIP-170
    assert 0 < size <= 24_576
