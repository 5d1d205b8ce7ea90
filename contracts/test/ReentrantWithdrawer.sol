// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

interface IDeRelayWithdraw {
    function withdraw() external;
    function fund(uint256 taskId) external payable;
    function joinRelay(uint256 taskId) external payable;
    function leaveRelay(uint256 taskId) external;
}

/// @notice Test adversary: joins and leaves a relay queue, then withdraws and tries to withdraw
/// again from inside its receive hook. The re-entry must fail and the outer withdraw with it.
contract ReentrantWithdrawer {
    IDeRelayWithdraw public immutable target;
    uint256 public reentries;

    constructor(IDeRelayWithdraw target_) {
        target = target_;
    }

    function joinAndLeave(uint256 taskId) external payable {
        target.joinRelay{value: msg.value}(taskId);
        target.leaveRelay(taskId);
    }

    function attack() external {
        target.withdraw();
    }

    receive() external payable {
        ++reentries;
        target.withdraw();
    }
}
