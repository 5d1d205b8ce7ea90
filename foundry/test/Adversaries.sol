// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

interface IWithdraw {
    function withdraw() external;
}

/// @notice A withdrawer that re-enters `withdraw` once from its receive hook and swallows the
/// outcome, so that a re-entry that pays is not undone by a revert further down. Against the real
/// contract (guarded, balance cleared before the send) the re-entry fails and the outer withdraw
/// pays exactly once; against a withdraw that sends before it clears, it is paid twice.
/// (contracts/test/ReentrantWithdrawer.sol re-enters without end, so every attempt reverts as a
/// whole and cannot show a double payment.)
contract ReentrantOnceWithdrawer {
    IWithdraw public immutable target;
    /// @notice Re-entries tried, and those that the target let through.
    uint256 public reentries;
    uint256 public reentriesPaid;
    bool private _inside;

    constructor(IWithdraw target_) {
        target = target_;
    }

    receive() external payable {
        if (_inside || msg.sender != address(target)) return;
        _inside = true;
        ++reentries;
        try target.withdraw() {
            ++reentriesPaid;
        } catch {}
        _inside = false;
    }
}
