// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IDeRelay: contracts/DeRelay.sol as the suite calls it
/// @notice The types and functions of DeRelay that the handler and the tests use, copied from the
/// contract (same names, same field order, so the same ABI). The suite deploys the compiled
/// contract by artifact name instead of importing it: the tests then compile without via-IR,
/// in seconds, and a mutant needs only DeRelay.sol recompiled. A change to the contract's ABI
/// shows up here as calls that fail to decode.
interface IDeRelay {
    /// @notice Where a task's relay stands.
    enum Phase {
        Idle, // queue empty: nobody holds a turn
        Turn, // the holder trains; it may submit until `phaseStart + turnDuration`
        Review // a child is under review: commits until commitEnd, reveals until revealEnd
    }

    /// @notice What became of a submitted model.
    enum Status {
        None,
        Genesis,
        Pending,
        Accepted,
        Rejected,
        Void,
        Held // scored within the slash band but outside the advance band: no reward, no slash, head unchanged
    }

    /// @notice Where a seat's ballot stands for `Seat.round`.
    enum Ballot {
        None, // no ballot; with `round` equal to the review's round: seated during that review, excused
        Committed,
        Revealed
    }

    /// @notice Every parameter of a task, fixed at creation. Amounts in wei, scores in bp of
    /// accuracy (0..10000), durations in seconds.
    struct TaskParams {
        uint80 minStake; // least stake to join the relay queue; below it a holder leaves
        uint80 validatorStake; // stake to hold a validator seat
        uint32 turnDuration; // time the holder has to submit
        uint32 commitWindow; // time validators have to commit, from the submission
        uint32 revealWindow; // time validators have to reveal, after the commit window
        uint8 quorum; // least reveals for a verdict; fewer make the submission void
        uint8 maxValidators; // seats per task (quorum..16)
        uint32 maxQueue; // longest relay queue
        uint16 slashBand; // reject (and slash) a child whose median delta to the champion is below -slashBand
        uint16 advanceBand; // the child becomes the head when its median delta is >= -advanceBand (<= slashBand)
        uint8 maxMisses; // consecutive missed commits that cost a validator its seat (>= 1)
        uint16 minGain; // least gain over the champion that crowns a child, and earns baseReward (>= 1)
        uint96 baseReward; // paid for a crowned child whose gain over its parent is >= minGain too
        uint96 rewardPerPoint; // paid per bp of gain over the champion
        uint16 slashTimeoutBp; // share of stake lost by a holder that lets its turn expire
        uint16 slashRejectBp; // share of stake lost by a relayer whose child is rejected
        uint16 slashNoRevealBp; // share of validator stake lost by committing and not revealing
        uint16 slashMissBp; // share of validator stake lost per review it could have committed to and did not
        uint16 bandBp; // a reveal within this many bp of both medians earns validatorFee
        uint96 validatorFee; // paid from the pool per in-band reveal
        uint16 keeperBountyBp; // keeper's share of a timeout slash; finalize pays this share of validatorFee
        uint16 royaltyBp; // share of a usage fee paid to contributors by shares
        uint96 usageFee; // least payment accepted by payForModel
        uint16 genesisScore; // the genesis model's score as its publisher measured it (display)
        bytes specCid; // binary CIDv1 of the task spec JSON
        bytes genesisCid; // binary CIDv1 of the genesis weights
    }

    /// @notice One submitted model (or the genesis), keyed by its CID digest; one slot.
    struct Record {
        address relayer;
        uint32 round;
        uint32 submittedAt;
        Status status;
        uint16 score; // median of the reveals, once finalized (0 when void)
        uint8 codec;
    }

    struct Seat {
        address validator;
        uint32 round; // the round of the ballot below
        uint16 childScore; // revealed score of the child under review
        uint16 championScore; // revealed score of the champion, on the same held-out data
        Ballot ballot;
        uint16 parentScore; // revealed score of the child's parent (the head it was trained from)
        uint8 misses; // consecutive reviews it could have committed to and did not
    }

    /// @notice A task's state as views return it.
    struct TaskView {
        Phase phase;
        uint32 round;
        address holder;
        uint64 phaseStart;
        uint64 deadline; // turn deadline (Turn) or commit end (Review)
        uint64 revealEnd; // Review only
        uint128 pool;
        uint32 queueLength;
        uint32 submissionCount;
        uint32 acceptedCount;
        uint16 championScore;
        uint16 headScore;
        bytes headCid;
        bytes championCid;
        uint8 validatorCount;
        uint256 totalShares;
        uint256 accPerShare;
    }

    /// @notice An address's position in one task as views return it.
    struct AccountView {
        uint256 withdrawable; // across all tasks
        uint256 relayerStake;
        bool queued;
        uint256 validatorStake;
        int16 seat; // -1 when no seat
        uint256 shares;
        uint256 pendingRoyalties;
    }

    function taskCount() external view returns (uint256);
    function withdrawable(address account) external view returns (uint256);

    function createTask(TaskParams calldata p) external payable returns (uint256 taskId);
    function fund(uint256 taskId) external payable;
    function payForModel(uint256 taskId) external payable;
    function joinRelay(uint256 taskId) external payable;
    function addStake(uint256 taskId) external payable;
    function leaveRelay(uint256 taskId) external;
    function skipTurn(uint256 taskId) external;
    function submitRelay(
        uint256 taskId,
        uint32 round,
        bytes32 parentDigest,
        bytes calldata childCid,
        bytes calldata metadataCid,
        bytes32 dataCommitment,
        uint64 samples
    ) external;
    function registerValidator(uint256 taskId) external payable;
    function leaveValidator(uint256 taskId) external;
    function commitScore(uint256 taskId, uint32 round, bytes32 commitment) external;
    function revealScore(
        uint256 taskId,
        uint32 round,
        uint16 childScore,
        uint16 championScore,
        uint16 parentScore,
        bytes32 salt
    ) external;
    function finalize(uint256 taskId) external;
    function claimRoyalties(uint256 taskId) external;
    function withdraw() external;

    function commitmentFor(
        uint256 taskId,
        uint32 round,
        uint16 childScore,
        uint16 championScore,
        uint16 parentScore,
        bytes32 salt,
        address validator
    ) external pure returns (bytes32);
    function taskParams(uint256 taskId) external view returns (TaskParams memory p);
    function taskState(uint256 taskId) external view returns (TaskView memory v);
    function queuePage(uint256 taskId, address cursor, uint256 limit)
        external
        view
        returns (address[] memory members, uint256[] memory stakes, address nextCursor);
    function latestSubmission(uint256 taskId) external view returns (bytes memory cid, Record memory record);
    function recordOf(uint256 taskId, bytes32 digest) external view returns (Record memory);
    function seatsOf(uint256 taskId) external view returns (Seat[] memory seats);
    function accountOf(uint256 taskId, address account) external view returns (AccountView memory v);
}
