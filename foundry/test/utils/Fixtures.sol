// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDeRelay} from "derelay/IDeRelay.sol";

/// @title What the invariant handler and the gas test both build: task parameters and CIDs
library Fixtures {
    /// @notice The parameters a test task starts from (the handler's first task); a test
    /// overrides what its scenario needs, and sets the spec and genesis CIDs.
    function taskParams() internal pure returns (IDeRelay.TaskParams memory p) {
        p.minStake = 1 ether;
        p.validatorStake = 1 ether;
        p.turnDuration = 100;
        p.commitWindow = 50;
        p.revealWindow = 50;
        p.quorum = 2;
        p.maxValidators = 3;
        p.maxQueue = 8;
        p.slashBand = 1000;
        p.advanceBand = 100;
        p.maxMisses = 3;
        p.minGain = 10;
        p.baseReward = 0.1 ether;
        p.rewardPerPoint = 0.001 ether;
        p.slashTimeoutBp = 1000;
        p.slashRejectBp = 2000;
        p.slashNoRevealBp = 1000;
        p.slashMissBp = 500;
        p.bandBp = 300;
        p.validatorFee = 0.01 ether;
        p.keeperBountyBp = 1000;
        p.royaltyBp = 5000;
        p.usageFee = 0.01 ether;
    }

    /// @notice A binary CIDv1 (sha2-256) of `codec` (0x55 raw, 0x70 dag-pb) over `sha256Digest`.
    function cid(bytes32 sha256Digest, uint8 codec) internal pure returns (bytes memory) {
        return abi.encodePacked(uint8(0x01), codec, uint8(0x12), uint8(0x20), sha256Digest);
    }

    /// @notice The sha2-256 digest inside a binary CIDv1 made by `cid`.
    function digest(bytes memory cidBytes) internal pure returns (bytes32 d) {
        assembly ("memory-safe") {
            d := mload(add(cidBytes, 36))
        }
    }
}
