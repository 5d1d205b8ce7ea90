// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDeRelay} from "derelay/IDeRelay.sol";
import {Fixtures} from "./utils/Fixtures.sol";
import {Vm, VM_ADDRESS} from "./utils/Vm.sol";

/// @title Gas per call is flat in the number of participants
/// @notice The same calls, on the same paths, in a task with 3 relayers queued of which 2 hold
/// royalty shares, and in one with 300 queued of which 40 hold shares: each call's gas may differ
/// by at most 1%. Every measured call starts from cold storage (`vm.cool`) and comes from an
/// address new to its deployment, so the two tasks pay the same access costs.
contract GasFlatTest {
    Vm private constant vm = Vm(VM_ADDRESS);

    uint256 private constant CALLS = 13;
    string[CALLS] private NAMES = [
        "joinRelay",
        "addStake",
        "leaveRelay",
        "payForModel",
        "claimRoyalties",
        "submitRelay",
        "commitScore",
        "revealScore",
        "finalize",
        "skipTurn",
        "registerValidator",
        "leaveValidator",
        "withdraw"
    ];

    IDeRelay private relay;
    uint256 private _labels;

    function test_gasPerCallIsFlatInTheNumberOfParticipants() public {
        uint256[CALLS] memory small = _measure(1, 2, 3);
        uint256[CALLS] memory large = _measure(2, 40, 300);
        for (uint256 i; i < CALLS; ++i) {
            uint256 diff = large[i] > small[i] ? large[i] - small[i] : small[i] - large[i];
            string memory what = string.concat(NAMES[i], ": ", vm.toString(small[i]), " gas with 3 relayers, ");
            require(diff * 100 <= small[i], string.concat(what, vm.toString(large[i]), " with 300"));
        }
    }

    /// @dev A fresh deployment: `contributors` relayers each get a child crowned (and royalty
    /// shares), `queued` relayers in all wait in the queue, a consumer pays; then every measured
    /// call, each from an address that `scenario` makes new. Returns the gas of each, in NAMES'
    /// order.
    function _measure(uint160 scenario, uint256 contributors, uint256 queued)
        private
        returns (uint256[CALLS] memory gas)
    {
        relay = IDeRelay(vm.deployCode("DeRelay.sol:DeRelay"));
        address validator = _fresh(scenario, 0);
        vm.deal(address(this), 10_000 ether);
        uint256 t = relay.createTask{value: 1000 ether}(_params());
        vm.prank(validator);
        relay.registerValidator{value: 1 ether}(t);
        for (uint256 i; i < queued; ++i) {
            if (i == contributors) {
                for (uint256 k; k < contributors; ++k) {
                    _crownedRound(t, validator, uint16(1000 + 10 * k));
                }
            }
            vm.deal(_relayer(scenario, i), 10 ether);
            vm.prank(_relayer(scenario, i));
            relay.joinRelay{value: 2 ether}(t);
        }
        relay.payForModel{value: 1 ether}(t);

        // the queue: relayer 0 holds the turn, relayer 1 (a contributor) is next, the last relayer
        // (not one) waits at the tail, and then in the middle
        address last = _relayer(scenario, queued - 1);
        gas[0] = _gasOf(_fresh(scenario, 1), 2 ether, abi.encodeCall(IDeRelay.joinRelay, (t)));
        gas[1] = _gasOf(_relayer(scenario, 1), 1 ether, abi.encodeCall(IDeRelay.addStake, (t)));
        gas[2] = _gasOf(last, 0, abi.encodeCall(IDeRelay.leaveRelay, (t)));
        gas[3] = _gasOf(_fresh(scenario, 2), 1 ether, abi.encodeCall(IDeRelay.payForModel, (t)));
        gas[4] = _gasOf(_relayer(scenario, 1), 0, abi.encodeCall(IDeRelay.claimRoyalties, (t)));
        IDeRelay.TaskView memory v = relay.taskState(t);
        bytes memory child = _cid();
        bytes memory submit =
            abi.encodeCall(IDeRelay.submitRelay, (t, v.round, Fixtures.digest(v.headCid), child, child, bytes32(0), 1));
        gas[5] = _gasOf(v.holder, 0, submit);
        uint16 score = uint16(1000 + 10 * contributors);
        bytes32 commitment = relay.commitmentFor(t, v.round, score + 10, score, score, bytes32(0), validator);
        gas[6] = _gasOf(validator, 0, abi.encodeCall(IDeRelay.commitScore, (t, v.round, commitment)));
        vm.warp(block.timestamp + 11);
        bytes memory reveal = abi.encodeCall(IDeRelay.revealScore, (t, v.round, score + 10, score, score, bytes32(0)));
        gas[7] = _gasOf(validator, 0, reveal);
        gas[8] = _gasOf(_fresh(scenario, 3), 0, abi.encodeCall(IDeRelay.finalize, (t)));
        vm.warp(block.timestamp + 101);
        gas[9] = _gasOf(_fresh(scenario, 4), 0, abi.encodeCall(IDeRelay.skipTurn, (t)));
        gas[10] = _gasOf(_fresh(scenario, 5), 1 ether, abi.encodeCall(IDeRelay.registerValidator, (t)));
        gas[11] = _gasOf(_fresh(scenario, 5), 0, abi.encodeCall(IDeRelay.leaveValidator, (t)));
        gas[12] = _gasOf(last, 0, abi.encodeCall(IDeRelay.withdraw, ()));
        require(relay.taskState(t).acceptedCount == contributors + 1, "the measured round was not accepted");
    }

    /// @dev The holder submits, the validator scores its child 10 bp over the champion and the
    /// parent, and the review is finalized: the child is crowned and its relayer gets shares.
    function _crownedRound(uint256 t, address validator, uint16 score) private {
        IDeRelay.TaskView memory v = relay.taskState(t);
        bytes memory child = _cid();
        vm.prank(v.holder);
        relay.submitRelay(t, v.round, Fixtures.digest(v.headCid), child, child, bytes32(0), 1);
        bytes32 commitment = relay.commitmentFor(t, v.round, score + 10, score, score, bytes32(0), validator);
        vm.prank(validator);
        relay.commitScore(t, v.round, commitment);
        vm.warp(block.timestamp + 11);
        vm.prank(validator);
        relay.revealScore(t, v.round, score + 10, score, score, bytes32(0));
        relay.finalize(t);
    }

    /// @dev Gas of one call by `from`, from cold storage.
    function _gasOf(address from, uint256 value, bytes memory data) private returns (uint256 used) {
        vm.deal(from, from.balance + value);
        vm.cool(address(relay));
        vm.prank(from);
        uint256 before = gasleft();
        (bool ok,) = address(relay).call{value: value}(data);
        used = before - gasleft();
        require(ok, "a measured call reverted");
    }

    function _relayer(uint160 scenario, uint256 i) private pure returns (address) {
        return address((scenario << 32) + 0x10000 + uint160(i));
    }

    function _fresh(uint160 scenario, uint160 i) private returns (address a) {
        a = address((scenario << 32) + 0x20000 + i);
        vm.deal(a, 10 ether);
    }

    function _params() private pure returns (IDeRelay.TaskParams memory p) {
        p = Fixtures.taskParams();
        p.commitWindow = 10;
        p.revealWindow = 10;
        p.quorum = 1;
        p.maxValidators = 2;
        p.maxQueue = 1000;
        p.genesisScore = 1000;
        p.specCid = Fixtures.cid(keccak256("spec"), 0x55);
        p.genesisCid = Fixtures.cid(keccak256("genesis"), 0x55);
    }

    function _cid() private returns (bytes memory) {
        return Fixtures.cid(keccak256(abi.encode(++_labels)), 0x55);
    }
}
