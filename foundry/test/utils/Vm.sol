// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice The few HEVM cheatcodes the suite uses (forge serves them at `VM_ADDRESS`); declared
/// here instead of vendoring forge-std.
interface Vm {
    function warp(uint256 timestamp) external;
    function prank(address sender) external;
    function deal(address account, uint256 balance) external;
    function load(address target, bytes32 slot) external view returns (bytes32);
    function cool(address target) external;
    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool);
    function label(address account, string calldata name) external;
    function deployCode(string calldata artifactPath) external returns (address deployed);
    function toString(uint256 value) external pure returns (string memory);
}

/// @dev keccak256("hevm cheat code") truncated to an address, where forge answers cheatcodes.
address constant VM_ADDRESS = 0x7109709ECfa91a80626fF3989D68f67F5b1DD12D;

/// @notice What forge's invariant runner asks a test contract for (forge-std's StdInvariant
/// answers the same calls): the contracts and the functions to call at random.
abstract contract InvariantTargets {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targets;
    FuzzSelector[] private _selectors;

    /// @dev Call only `selectors` of `target`.
    function _target(address target, bytes4[] memory selectors) internal {
        _targets.push(target);
        _selectors.push(FuzzSelector(target, selectors));
    }

    /// @notice The contracts the runner calls.
    function targetContracts() public view returns (address[] memory) {
        return _targets;
    }

    /// @notice The functions the runner calls on them.
    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _selectors;
    }
}
