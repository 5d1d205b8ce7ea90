// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IDeRelay: the external interface of DeRelay
/// @notice The types, events, errors and functions of contracts/DeRelay.sol that callers see: the
/// relay (queue, turns, submissions), the review (validator seats, commit and reveal, finalize) and
/// the money (pool, rewards, royalties, pull payments). DeRelay implements it; the Foundry suite
/// calls the deployed contract through it. The storage layout's own types live in DeRelay.
interface IDeRelay {
    // ------------------------------------------------------------------ types

    /// @notice Where a task's relay stands.
    enum Phase {
        Idle, // queue empty: nobody holds a turn
        Turn, // the holder trains; it may submit until `phaseEnd` (its start + turnDuration)
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

    /// @notice Why a relayer lost stake.
    enum SlashReason {
        Timeout,
        Rejected
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
        uint8 maxMisses; // consecutive reviews without a reveal that cost a validator its seat (>= 1)
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

    /// @notice A validator seat and its ballot for `round`, as `seatsOf` returns it (one storage slot).
    struct Seat {
        address validator;
        uint32 round; // the round of the ballot below
        uint16 childScore; // revealed score of the child under review
        uint16 championScore; // revealed score of the champion, on the same held-out data
        Ballot ballot;
        uint16 parentScore; // revealed score of the child's parent (the head it was trained from)
        uint8 misses; // consecutive reviews it could have revealed in and did not
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

    // ------------------------------------------------------------------ events

    /// @notice A task was created with its spec, genesis model and pool.
    event TaskCreated(
        uint256 indexed taskId,
        address indexed publisher,
        bytes specCid,
        bytes genesisCid,
        uint16 genesisScore,
        uint256 pool
    );
    /// @notice Someone added ether to a task's pool.
    event PoolFunded(uint256 indexed taskId, address indexed funder, uint256 amount, uint256 pool);
    /// @notice A relayer staked and joined the queue's tail.
    event RelayerJoined(uint256 indexed taskId, address indexed relayer, uint256 stake, uint32 queueLength);
    /// @notice A queued relayer added stake.
    event StakeAdded(uint256 indexed taskId, address indexed relayer, uint256 amount, uint256 stake);
    /// @notice A relayer left the queue; `refund` became withdrawable. `forced` when its stake fell below minStake.
    event RelayerLeft(uint256 indexed taskId, address indexed relayer, uint256 refund, bool forced);
    /// @notice A turn began: `holder` may submit for `round` until `deadline`.
    event TurnStarted(uint256 indexed taskId, uint32 indexed round, address indexed holder, uint64 deadline);
    /// @notice The holder submitted a child of `parentDigest`; review begins.
    event RelaySubmitted(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed relayer,
        bytes32 parentDigest,
        bytes childCid,
        bytes metadataCid,
        bytes32 dataCommitment,
        uint64 samples
    );
    /// @notice A validator took a seat.
    event ValidatorRegistered(uint256 indexed taskId, address indexed validator, uint8 seat, uint256 stake);
    /// @notice A validator gave up its seat; `refund` became withdrawable. `forced` when slashed below validatorStake.
    event ValidatorLeft(uint256 indexed taskId, address indexed validator, uint256 refund, bool forced);
    /// @notice A validator committed to hidden scores.
    event ScoreCommitted(uint256 indexed taskId, uint32 indexed round, address indexed validator, bytes32 commitment);
    /// @notice A validator revealed its scores of the child, of the champion and of the child's parent.
    event ScoreRevealed(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed validator,
        uint16 childScore,
        uint16 championScore,
        uint16 parentScore
    );
    /// @notice A review ended: the lower medians of the child's scores, of the champion's, and of the
    /// paired differences with the champion (`delta`, which decides) and with the parent (`progress`).
    /// `reward` went to the relayer.
    event RoundFinalized(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed relayer,
        Status verdict,
        uint16 childScore,
        uint16 championScore,
        int16 delta,
        int16 progress,
        uint8 reveals,
        uint256 reward
    );
    /// @notice The child of `round` beat the champion by `gain` bp and became the champion.
    event ChampionCrowned(
        uint256 indexed taskId, uint32 indexed round, address indexed relayer, bytes32 digest, uint16 score, uint16 gain
    );
    /// @notice A seated validator did not commit to a review it could have committed to, and lost
    /// stake; `misses` counts its reviews without a reveal in a row.
    event ValidatorMissed(
        uint256 indexed taskId, uint32 indexed round, address indexed validator, uint256 amount, uint8 misses
    );
    /// @notice A validator earned its fee for an in-band reveal.
    event ValidatorPaid(uint256 indexed taskId, uint32 indexed round, address indexed validator, uint256 fee);
    /// @notice A validator committed and did not reveal, and lost stake to the pool; `misses` counts
    /// its reviews without a reveal in a row.
    event ValidatorSlashed(
        uint256 indexed taskId, uint32 indexed round, address indexed validator, uint256 amount, uint8 misses
    );
    /// @notice In a rejected review, a validator revealed a paired difference more than `slashBand`
    /// above the median, which a majority of the reveals agreed on (it passed a child that they found
    /// bad enough to reject), and lost stake to the pool as if it had not revealed.
    event ValidatorOutvoted(uint256 indexed taskId, uint32 indexed round, address indexed validator, uint256 amount);
    /// @notice A relayer lost stake: to the pool, less any keeper bounty.
    event RelayerSlashed(
        uint256 indexed taskId, uint32 indexed round, address indexed relayer, uint256 amount, SlashReason reason
    );
    /// @notice A keeper earned a bounty for moving the relay on.
    event KeeperPaid(uint256 indexed taskId, uint32 indexed round, address indexed keeper, uint256 bounty);
    /// @notice A consumer paid for the model; `toContributors` is shared by royalty shares, the rest refilled the pool.
    event ModelPaid(uint256 indexed taskId, address indexed payer, uint256 amount, uint256 toContributors);
    /// @notice Royalties owed to `account` became withdrawable.
    event RoyaltiesSettled(uint256 indexed taskId, address indexed account, uint256 amount);
    /// @notice `account` was sent its withdrawable balance.
    event Withdrawn(address indexed account, uint256 amount);

    // ------------------------------------------------------------------ errors

    /// @notice Raised by `createTask` when a parameter is out of its range.
    /// @param name The parameter's field name in `TaskParams`.
    /// @param value The value given.
    error DeRelay__InvalidParameter(string name, uint256 value);
    /// @notice Raised when a CID is not a binary CIDv1 of a raw or dag-pb node with a sha2-256
    /// multihash (36 bytes): the spec and genesis CIDs of `createTask`, the child and metadata CIDs
    /// of `submitRelay`.
    /// @param cid The CID given.
    error DeRelay__InvalidCid(bytes cid);
    /// @notice Raised by every function that takes a task id when no task has that id.
    /// @param taskId The id given.
    error DeRelay__UnknownTask(uint256 taskId);
    /// @notice Raised by `fund` and `addStake` when called without ether.
    error DeRelay__ZeroAmount();
    /// @notice Raised by `joinRelay` below `minStake` and by `registerValidator` below `validatorStake`.
    /// @param sent The ether sent.
    /// @param required The least stake.
    error DeRelay__StakeTooLow(uint256 sent, uint256 required);
    /// @notice Raised by `payForModel` when the payment is zero or below the task's `usageFee`.
    /// @param sent The ether sent.
    /// @param required The usage fee.
    error DeRelay__FeeTooLow(uint256 sent, uint256 required);
    /// @notice Raised by `joinRelay` when the caller is already in the task's queue.
    error DeRelay__AlreadyQueued(uint256 taskId, address relayer);
    /// @notice Raised by `addStake` and `leaveRelay` when the caller is not in the task's queue, and
    /// by `queuePage` when its cursor is not.
    error DeRelay__NotQueued(uint256 taskId, address relayer);
    /// @notice Raised by `joinRelay` when the queue already holds `maxQueue` relayers.
    error DeRelay__QueueFull(uint256 taskId, uint256 maxQueue);
    /// @notice Raised by `leaveRelay` when the holder tries to leave under review or past its deadline.
    error DeRelay__HolderCannotLeave(uint256 taskId, address holder);
    /// @notice Raised when the relay is not in the phase the call needs: `skipTurn` and
    /// `submitRelay` need a turn, `commitScore`, `revealScore` and `finalize` a review.
    /// @param phase The task's phase.
    /// @param required The phase the call needs.
    error DeRelay__WrongPhase(uint256 taskId, Phase phase, Phase required);
    /// @notice Raised by `submitRelay` when the caller does not hold the turn.
    error DeRelay__NotHolder(uint256 taskId, address caller, address holder);
    /// @notice Raised by `submitRelay`, `commitScore` and `revealScore` for a round other than the current one.
    /// @param given The round given.
    /// @param current The task's round.
    error DeRelay__WrongRound(uint256 taskId, uint256 given, uint256 current);
    /// @notice Raised by `submitRelay` after the turn's deadline.
    error DeRelay__TurnExpired(uint256 taskId, uint256 deadline);
    /// @notice Raised by `skipTurn` until the turn's deadline has passed.
    error DeRelay__TurnNotExpired(uint256 taskId, uint256 deadline);
    /// @notice Raised by `submitRelay` when the parent digest is not the head's.
    /// @param given The parent digest given.
    /// @param head The head's digest.
    error DeRelay__StaleParent(uint256 taskId, bytes32 given, bytes32 head);
    /// @notice Raised by `submitRelay` for a child already submitted in the task (other than the
    /// caller's own child of the latest, void review).
    error DeRelay__ChildSeen(uint256 taskId, bytes32 digest);
    /// @notice Raised by `submitRelay` when the child was trained on no samples.
    error DeRelay__ZeroSamples();
    /// @notice Raised by `registerValidator` when the caller already holds a seat in the task.
    error DeRelay__AlreadyValidator(uint256 taskId, address validator);
    /// @notice Raised by `leaveValidator`, `commitScore` and `revealScore` when the caller holds no seat.
    error DeRelay__NotValidator(uint256 taskId, address caller);
    /// @notice Raised by `registerValidator` when all `maxValidators` seats are taken.
    error DeRelay__SeatsFull(uint256 taskId, uint256 maxValidators);
    /// @notice Raised by `leaveValidator` during a review, for a validator expected to vote in it.
    /// @param round The round under review.
    error DeRelay__BallotOpen(uint256 taskId, uint256 round);
    /// @notice Raised by `commitScore` when the holder tries to review its own child.
    error DeRelay__SelfReview(uint256 taskId, address relayer);
    /// @notice Raised by `commitScore` after the commit window.
    error DeRelay__CommitClosed(uint256 taskId, uint256 commitEnd);
    /// @notice Raised by `commitScore` when the seat already committed to this round.
    error DeRelay__AlreadyCommitted(uint256 taskId, uint256 round);
    /// @notice Raised by `revealScore` before the commit window has ended.
    error DeRelay__RevealNotOpen(uint256 taskId, uint256 commitEnd);
    /// @notice Raised by `revealScore` after the reveal window.
    error DeRelay__RevealClosed(uint256 taskId, uint256 revealEnd);
    /// @notice Raised by `revealScore` when the seat has no commitment for this round.
    error DeRelay__NotCommitted(uint256 taskId, uint256 round);
    /// @notice Raised by `revealScore` when the seat already revealed this round.
    error DeRelay__AlreadyRevealed(uint256 taskId, uint256 round);
    /// @notice Raised by `revealScore` for a score above 10000 bp.
    error DeRelay__ScoreOutOfRange(uint256 score);
    /// @notice Raised by `revealScore` when the scores and salt do not hash to the seat's commitment.
    error DeRelay__RevealMismatch(uint256 taskId, uint256 round);
    /// @notice Raised by `finalize` before the reveal window ends, unless the commit window has
    /// passed and every committed validator has revealed.
    error DeRelay__ReviewOpen(uint256 taskId, uint256 revealEnd);
    /// @notice Raised by `withdraw` when the caller has nothing to withdraw.
    error DeRelay__NothingToWithdraw(address account);

    // ------------------------------------------------------------------ functions

    /// @notice Denominator of every basis-point parameter and of scores (accuracy in bp).
    function BP() external view returns (uint256);

    /// @notice The largest `maxValidators` a task may ask for; bounds the one loop in `finalize`.
    function MAX_VALIDATORS() external view returns (uint256);

    /// @notice Longest turn, commit or reveal window: 30 days.
    function MAX_WINDOW() external view returns (uint256);

    /// @notice Number of tasks created; task ids run from 1.
    function taskCount() external view returns (uint256);

    /// @notice Withdrawable balance of each address, across tasks.
    function withdrawable(address account) external view returns (uint256);

    /// @notice Create a task: its parameters, spec and genesis model. `msg.value` seeds its pool.
    /// @param p Every parameter of the task; each is range-checked.
    /// @return taskId The new task's id.
    function createTask(TaskParams calldata p) external payable returns (uint256 taskId);

    /// @notice Add `msg.value` to a task's pool.
    /// @param taskId The task to fund.
    function fund(uint256 taskId) external payable;

    /// @notice Pay for a task's model (a recorded licence; the weights themselves are public on
    /// IPFS). `royaltyBp` of the payment goes to contributors by shares, the rest to the pool.
    /// @param taskId The task whose model is paid for.
    function payForModel(uint256 taskId) external payable;

    /// @notice Stake `msg.value` (>= minStake) and join the tail of a task's relay queue. If the
    /// relay is idle, the caller's turn starts at once.
    /// @param taskId The task to join.
    function joinRelay(uint256 taskId) external payable;

    /// @notice Add `msg.value` to the caller's stake in a task's queue.
    /// @param taskId The task.
    function addStake(uint256 taskId) external payable;

    /// @notice Leave a task's queue; the stake becomes withdrawable. The holder may give up a turn
    /// it has not used, before its deadline (the next turn starts at once), losing the timeout
    /// slash when others wait behind it (nothing when alone); a holder under review or past its
    /// deadline must wait for the verdict or the skip.
    /// @param taskId The task.
    function leaveRelay(uint256 taskId) external;

    /// @notice After the holder's deadline passes with no submission, anyone may skip its turn:
    /// the holder loses `slashTimeoutBp` of its stake, the caller earns `keeperBountyBp` of that,
    /// the rest goes to the pool, and the next turn starts.
    /// @param taskId The task.
    function skipTurn(uint256 taskId) external;

    /// @notice The holder submits the child it trained from the head, for review. After a void
    /// review the holder keeps the turn for one more round and may submit the same child again
    /// (as long as it is the latest submission): nobody else can take a child whose review
    /// decided nothing while its relayer retries.
    /// @param taskId The task.
    /// @param round The current round (a submission for another round reverts).
    /// @param parentDigest sha2-256 digest of the parent's CID: must be the head's.
    /// @param childCid Binary CIDv1 (raw or dag-pb, sha2-256) of the child weights; never seen before
    /// in this task, except the caller's own child of the latest, void review.
    /// @param metadataCid Binary CIDv1 of the relay card (training config, metrics, timings, version).
    /// @param dataCommitment Hash over the hashes of the samples trained on.
    /// @param samples Number of samples trained on (> 0).
    function submitRelay(
        uint256 taskId,
        uint32 round,
        bytes32 parentDigest,
        bytes calldata childCid,
        bytes calldata metadataCid,
        bytes32 dataCommitment,
        uint64 samples
    ) external;

    /// @notice Stake `msg.value` (>= validatorStake) and take a free validator seat. A validator
    /// seated while a review's commit window is open is expected to commit to it; one seated after
    /// the window closed is excused from that review.
    /// @param taskId The task.
    function registerValidator(uint256 taskId) external payable;

    /// @notice Give up the caller's validator seat; its stake becomes withdrawable. During a review
    /// only the holder and a validator seated after its commit window closed may leave: one with a ballot would withdraw a
    /// vote after seeing the other reveals, one without would dodge the charge for its missed commit
    /// (and could squat every seat between reviews).
    /// @param taskId The task.
    function leaveValidator(uint256 taskId) external;

    /// @notice Commit to hidden scores of the child under review and of the champion, before the
    /// commit window ends.
    /// @param taskId The task.
    /// @param round The round under review.
    /// @param commitment keccak256(abi.encode(taskId, round, childScore, championScore, salt,
    /// validator)); see `commitmentFor`.
    function commitScore(uint256 taskId, uint32 round, bytes32 commitment) external;

    /// @notice Reveal the committed scores, after the commit window and before the reveal window ends.
    /// A reveal clears the seat's count of reviews without one.
    /// @param taskId The task.
    /// @param round The round under review.
    /// @param childScore Accuracy of the child on the validator's held-out data, in bp (0..10000).
    /// @param championScore Accuracy of the champion on the same data, in bp (0..10000).
    /// @param parentScore Accuracy of the child's parent (the head) on the same data, in bp (0..10000).
    /// @param salt The secret the commitment was made with.
    function revealScore(
        uint256 taskId,
        uint32 round,
        uint16 childScore,
        uint16 championScore,
        uint16 parentScore,
        bytes32 salt
    ) external;

    /// @notice End the review of the submission: after the reveal window, or early once the commit
    /// window has passed and every committed validator has revealed. With `delta` the lower median
    /// of the validators' paired differences (child score - champion score, each on its own data):
    /// - fewer than `quorum` reveals: void. Nothing is paid from the pool; the holder keeps the turn
    ///   for one more round (once in a row) to have the same child reviewed again.
    /// - a child median of 0 (weights that do not load, do not fit the spec or hold NaN score 0) or
    ///   `delta < -slashBand`: rejected, the relayer loses `slashRejectBp` of its stake.
    /// - `delta < -advanceBand`: held. No reward, no slash, the head stays.
    /// - otherwise accepted: the child becomes the head; when `delta >= minGain` it also becomes the
    ///   champion and its relayer earns, for `gain = min(delta, progress)` (`progress` the median of
    ///   child score - parent score), `(gain >= minGain ? baseReward : 0) + rewardPerPoint * gain`
    ///   from the pool when `progress > 0`, and as many royalty shares.
    /// In a decided review each reveal within `bandBp` of both the child's median and `delta` earns
    /// `validatorFee`, and the caller `validatorFee * keeperBountyBp / 10000`, from the pool. In every
    /// review a validator that committed and did not reveal loses `slashNoRevealBp` of its stake, and
    /// one that could have committed and did not loses `slashMissBp`; after `maxMisses` reviews in a
    /// row without a reveal (of either kind) it loses its seat, whatever its stake. In a rejected review where more than half of the reveals lie
    /// within `slashBand` of `delta`, each reveal more than `slashBand` above it loses
    /// `slashNoRevealBp` too: it passed a child the majority found bad enough to reject, as a
    /// validator that reveals without scoring (the last published medians, say) does. Any validator
    /// left under `validatorStake` loses its seat and gets the rest of its stake back.
    /// @param taskId The task.
    function finalize(uint256 taskId) external;

    /// @notice Move the caller's royalties from a task into its withdrawable balance.
    /// @param taskId The task.
    function claimRoyalties(uint256 taskId) external;

    /// @notice Send the caller its whole withdrawable balance.
    function withdraw() external;

    /// @notice The commitment a validator must submit for its scores and `salt`.
    /// @return The keccak256 of abi.encode(taskId, round, childScore, championScore, parentScore, salt,
    /// validator).
    function commitmentFor(
        uint256 taskId,
        uint32 round,
        uint16 childScore,
        uint16 championScore,
        uint16 parentScore,
        bytes32 salt,
        address validator
    ) external pure returns (bytes32);

    /// @notice A task's parameters, as given at creation.
    /// @param taskId The task.
    /// @return p The parameters.
    function taskParams(uint256 taskId) external view returns (TaskParams memory p);

    /// @notice The publisher of a task.
    /// @param taskId The task.
    /// @return The address that created it.
    function publisherOf(uint256 taskId) external view returns (address);

    /// @notice A task's relay state, pool, head and royalty accumulator.
    /// @param taskId The task.
    /// @return v The state.
    function taskState(uint256 taskId) external view returns (TaskView memory v);

    /// @notice The head model: the newest accepted child, or the genesis.
    /// @param taskId The task.
    /// @return cid Binary CIDv1 of the head weights.
    /// @return score Its median score in bp.
    function head(uint256 taskId) external view returns (bytes memory cid, uint16 score);

    /// @notice The champion: the best model accepted so far (the genesis until a child beats it),
    /// which is what consumers license and what each review measures children against.
    /// @param taskId The task.
    /// @return cid Binary CIDv1 of the champion's weights.
    /// @return score Its median score in the last decided review (or when it was crowned).
    function champion(uint256 taskId) external view returns (bytes memory cid, uint16 score);

    /// @notice A page of the relay queue in turn order, from `cursor` (zero: from the holder).
    /// @param taskId The task.
    /// @param cursor The member to start at, or zero for the front.
    /// @param limit The most members to return.
    /// @return members Members in queue order with their stakes.
    /// @return stakes Their stakes.
    /// @return nextCursor The member after the page, or zero at the end.
    function queuePage(uint256 taskId, address cursor, uint256 limit)
        external
        view
        returns (address[] memory members, uint256[] memory stakes, address nextCursor);

    /// @notice The newest entry of the lineage: the child under review during a review, else the
    /// latest submission decided, or the genesis before any. Earlier entries are in the
    /// TaskCreated and RelaySubmitted events, and each one's verdict in `recordOf`.
    /// @param taskId The task.
    /// @return cid Binary CIDv1 of the model.
    /// @return record Its record.
    function latestSubmission(uint256 taskId) external view returns (bytes memory cid, Record memory record);

    /// @notice The record of a model by its CID digest (status None when never submitted).
    /// @param taskId The task.
    /// @param digest The sha2-256 digest of the model's CID.
    /// @return The record.
    function recordOf(uint256 taskId, bytes32 digest) external view returns (Record memory);

    /// @notice The validator seats of a task and their ballots.
    /// @param taskId The task.
    /// @return seats One entry per seat (validator zero when free).
    function seatsOf(uint256 taskId) external view returns (Seat[] memory seats);

    /// @notice What an address holds in a task: stakes, shares, pending royalties, and its
    /// withdrawable balance (across all tasks).
    /// @param taskId The task.
    /// @param account The address.
    /// @return v The position.
    function accountOf(uint256 taskId, address account) external view returns (AccountView memory v);
}
