// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

interface IDeRelayRelayer {
    function withdraw() external;
    function joinRelay(uint256 taskId) external payable;
    function leaveRelay(uint256 taskId) external;
}

/// @notice Test adversary: a relayer whose receive() always reverts. Its own withdrawal fails;
/// nobody else's may.
contract RevertingReceiver {
    IDeRelayRelayer public immutable target;

    constructor(IDeRelayRelayer target_) {
        target = target_;
    }

    function join(uint256 taskId) external payable {
        target.joinRelay{value: msg.value}(taskId);
    }

    function leave(uint256 taskId) external {
        target.leaveRelay(taskId);
    }

    function withdraw() external {
        target.withdraw();
    }

    receive() external payable {
        revert("RevertingReceiver: no thanks");
    }
}
