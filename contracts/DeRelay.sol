// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IDeRelay} from "./IDeRelay.sol";

/// @title DeRelay: decentralized relay learning
/// @notice Participants take turns training one model. The front of a task's relay queue holds the
/// turn, trains the head model and submits the child's CID; staked validators score the child and
/// the champion (the best model accepted so far) on the same held-out data of their own (commit,
/// then reveal), and the median of their paired differences decides. Two bands split the verdict:
/// a child within `advanceBand` of the champion becomes the head, one within `slashBand` is held
/// (nothing moves), one further below is rejected and its relayer slashed. Only a child that beats
/// the champion earns a reward and royalty shares, and becomes the champion, which is what
/// consumers license. Consumers' usage fees pay the shares and refill the pool. Every credit is a
/// pull payment: `withdraw` is the only function that sends ether.
/// @dev Every operation is O(1) in the number of participants and rounds; the one loop runs over at
/// most `maxValidators` (<= 16) seats. CIDs are stored as a sha2-256 digest plus a codec byte and
/// emitted whole (CIDv1 binary form) in events.
///
/// Balance invariant: address(this).balance == sum(pools) + sum(relayer stakes) +
/// sum(validator stakes) + sum(withdrawable) + sum(unsettled royalties) + dust, where dust comes
/// only from flooring each account's `shares * accPerShare / 1e18` and never leaves the contract.
/// The external types, events, errors and functions are declared, and documented, in IDeRelay.
contract DeRelay is IDeRelay, ReentrancyGuard {
    // ------------------------------------------------------------------ constants

    /// @inheritdoc IDeRelay
    uint256 public constant BP = 10_000;
    /// @inheritdoc IDeRelay
    uint256 public constant MAX_VALIDATORS = 16;
    /// @inheritdoc IDeRelay
    uint256 public constant MAX_WINDOW = 30 days;
    /// @dev Scale of `accPerShare` (royalty wei per share wei).
    uint256 private constant ACC_SCALE = 1e18;
    /// @dev Multicodec of raw leaves and of dag-pb nodes: the two codecs `ipfs add` produces.
    uint8 private constant CODEC_RAW = 0x55;
    uint8 private constant CODEC_DAG_PB = 0x70;
    /// @dev Length of a binary CIDv1 with a sha2-256 multihash: version, codec, 0x12, 0x20, digest.
    uint256 private constant CID_LENGTH = 36;

    // ------------------------------------------------------------------ types

    /// @dev Immutable task parameters, packed into five slots by how they are read together (the
    /// consumer terms live beside the royalty shares, in `Royalty`).
    struct Config {
        // slot 0: stakes and windows (every relay transaction reads it)
        uint80 minStake;
        uint80 validatorStake;
        uint32 turnDuration;
        uint32 commitWindow;
        uint32 revealWindow;
        // slot 1: review and reward (finalize)
        uint96 baseReward;
        uint96 rewardPerPoint;
        uint8 quorum;
        uint8 maxValidators;
        uint16 slashBand;
        uint16 advanceBand;
        uint8 maxMisses;
        // slot 2: basis points and fees (finalize, skip)
        uint96 validatorFee;
        uint32 maxQueue;
        uint16 minGain;
        uint16 slashTimeoutBp;
        uint16 slashRejectBp;
        uint16 slashNoRevealBp;
        uint16 slashMissBp;
        uint16 bandBp;
        uint16 keeperBountyBp;
        // slot 3
        bytes32 specDigest;
        // slot 4
        address publisher;
        uint8 specCodec;
        uint16 genesisScore;
    }

    /// @dev The relay's moving part, one slot: read and written by every relay transaction.
    struct State {
        address holder; // queue front: holds the turn (zero when the queue is empty)
        uint32 round; // number of the current turn, from 1
        uint32 phaseEnd; // Turn: the turn's deadline; Review: the commit window's end; Idle: when it went idle (seconds; good until 2106)
        Phase phase;
        uint8 headCodec; // also keeps the slot non-zero from the task's creation on
        bool kept; // this turn is the holder's second try after a void review
        bool fresh; // the newest submission is a new lineage entry (not a void child submitted again)
    }

    /// @dev Money and counters, one slot.
    struct Ledger {
        uint128 pool; // funds rewards, validator fees and keeper bounties
        uint32 queueLength;
        uint32 submissionCount; // lineage entries decided, genesis included (the entries live in events)
        uint16 championScore; // the champion's median score in the last decided review (or when crowned)
        uint16 headScore; // the head's median score when it was accepted
        uint32 acceptedCount;
    }

    /// @dev Royalty accumulator (Synthetix StakingRewards style) and the consumer terms, which
    /// payForModel reads with the shares in one slot.
    struct Royalty {
        uint256 accPerShare; // royalty wei per share, scaled by 1e18; only grows
        uint128 totalShares; // sum of shares: total relay rewards ever paid (each from a uint128 pool)
        uint96 usageFee; // least payment accepted by payForModel
        uint16 royaltyBp; // share of a usage fee paid to contributors by shares
    }

    /// @dev A relayer's place in the circular, doubly linked queue and its stake.
    struct Relayer {
        address next; // zero when not queued; itself when alone
        uint96 stake;
        address prev;
    }

    /// @dev The revealed ballots of one review, gathered by `_tally`.
    struct Tally {
        int256[] child; // child scores, in seat order of the reveals
        int256[] champion; // champion scores, paired with `child`
        int256[] delta; // child - champion, paired
        int256[] progress; // child - parent, paired
        address[] revealers;
        uint256 reveals;
        uint256 revealed; // bit i: seat i revealed (reveal n is the n-th set bit)
        uint256 silent; // bit i: seat i committed and did not reveal
        uint256 outvoted; // bit i: seat i passed a rejected child (`_markOutvoted`)
        uint256 missed; // bit i: seat i could have committed and did not
    }

    /// @dev What a review decided, worked out by `finalize`'s steps: the verdict, the lower medians it
    /// rests on (all zero when void) and the relayer's reward.
    struct Outcome {
        Status verdict;
        uint256 childScore;
        uint256 championScore;
        int256 delta; // child - champion, which decides
        int256 progress; // child - parent
        uint256 reward;
    }

    /// @dev A validator's stake and seat number plus one (0: no seat).
    struct Validator {
        uint96 stake;
        uint8 seatPlusOne;
    }

    /// @dev A contributor's royalty position in one task.
    struct Contributor {
        uint256 shares;
        uint256 accPaid; // accPerShare when last settled
    }

    // ------------------------------------------------------------------ storage

    /// @inheritdoc IDeRelay
    uint256 public taskCount;
    /// @inheritdoc IDeRelay
    mapping(address => uint256) public withdrawable;

    mapping(uint256 => Config) private _configs;
    mapping(uint256 => State) private _states;
    mapping(uint256 => Ledger) private _ledgers;
    mapping(uint256 => bytes32) private _headDigests;
    mapping(uint256 => bytes32) private _championDigests;
    mapping(uint256 => Royalty) private _royalties;
    mapping(uint256 => mapping(bytes32 => Record)) private _records;
    /// @dev The genesis model's digest (its record holds the codec).
    mapping(uint256 => bytes32) private _genesisDigests;
    /// @dev The newest submission's digest: the child under review during a review. The lineage
    /// itself (every submission in order) lives in RelaySubmitted events, not in storage.
    mapping(uint256 => bytes32) private _latestDigests;
    mapping(uint256 => mapping(address => Relayer)) private _relayers;
    mapping(uint256 => mapping(uint256 => Seat)) private _seats;
    mapping(uint256 => mapping(uint256 => bytes32)) private _commitments;
    mapping(uint256 => mapping(address => Validator)) private _validators;
    mapping(uint256 => mapping(address => Contributor)) private _contributors;

    // ------------------------------------------------------------------ modifiers

    modifier taskExists(uint256 taskId) {
        if (taskId == 0 || taskId > taskCount) revert DeRelay__UnknownTask(taskId);
        _;
    }

    // ------------------------------------------------------------------ tasks and pool

    /// @inheritdoc IDeRelay
    function createTask(TaskParams calldata p) external payable returns (uint256 taskId) {
        _checkParams(p);
        (bytes32 specDigest, uint8 specCodec) = _parseCid(p.specCid);
        (bytes32 genesisDigest, uint8 genesisCodec) = _parseCid(p.genesisCid);

        taskId = ++taskCount;
        _configs[taskId] = Config({
            minStake: p.minStake,
            validatorStake: p.validatorStake,
            turnDuration: p.turnDuration,
            commitWindow: p.commitWindow,
            baseReward: p.baseReward,
            rewardPerPoint: p.rewardPerPoint,
            revealWindow: p.revealWindow,
            quorum: p.quorum,
            maxValidators: p.maxValidators,
            slashBand: p.slashBand,
            advanceBand: p.advanceBand,
            maxMisses: p.maxMisses,
            validatorFee: p.validatorFee,
            maxQueue: p.maxQueue,
            minGain: p.minGain,
            slashTimeoutBp: p.slashTimeoutBp,
            slashRejectBp: p.slashRejectBp,
            slashNoRevealBp: p.slashNoRevealBp,
            slashMissBp: p.slashMissBp,
            bandBp: p.bandBp,
            keeperBountyBp: p.keeperBountyBp,
            publisher: msg.sender,
            specDigest: specDigest,
            specCodec: specCodec,
            genesisScore: p.genesisScore
        });
        Royalty storage royalty = _royalties[taskId];
        royalty.usageFee = p.usageFee;
        royalty.royaltyBp = p.royaltyBp;
        State storage state = _states[taskId];
        state.headCodec = genesisCodec;
        _ledgers[taskId] = Ledger({
            pool: SafeCast.toUint128(msg.value),
            queueLength: 0,
            submissionCount: 1,
            championScore: p.genesisScore,
            headScore: p.genesisScore,
            acceptedCount: 0
        });
        _headDigests[taskId] = genesisDigest;
        _championDigests[taskId] = genesisDigest;
        _genesisDigests[taskId] = genesisDigest;
        _records[taskId][genesisDigest] = Record({
            relayer: msg.sender,
            round: 0,
            submittedAt: uint32(block.timestamp),
            status: Status.Genesis,
            score: p.genesisScore,
            codec: genesisCodec
        });
        emit TaskCreated(taskId, msg.sender, p.specCid, p.genesisCid, p.genesisScore, msg.value);
    }

    /// @inheritdoc IDeRelay
    function fund(uint256 taskId) external payable {
        Ledger storage ledger = _ledgers[taskId];
        // Every task's lineage counts its genesis: a zero count is a task that does not exist.
        if (ledger.submissionCount == 0) revert DeRelay__UnknownTask(taskId);
        if (msg.value == 0) revert DeRelay__ZeroAmount();
        uint128 pool = SafeCast.toUint128(ledger.pool + msg.value);
        ledger.pool = pool;
        emit PoolFunded(taskId, msg.sender, msg.value, pool);
    }

    /// @inheritdoc IDeRelay
    /// @dev Rounding: the whole royalty share is set aside for contributors and accPerShare grows
    /// by floor(royalty * 1e18 / totalShares). What contributors can claim, each account's floor of
    /// shares * accPerShare / 1e18, never exceeds what was set aside; the difference is dust that
    /// stays in the contract.
    function payForModel(uint256 taskId) external payable {
        Ledger storage ledger = _ledgers[taskId];
        // Every task's lineage counts its genesis: a zero count is a task that does not exist.
        if (ledger.submissionCount == 0) revert DeRelay__UnknownTask(taskId);
        Royalty storage royalty = _royalties[taskId];
        uint256 usageFee = royalty.usageFee;
        if (msg.value == 0 || msg.value < usageFee) revert DeRelay__FeeTooLow(msg.value, usageFee);
        uint256 totalShares = royalty.totalShares;
        uint256 toContributors;
        if (totalShares != 0) {
            toContributors = msg.value * royalty.royaltyBp / BP;
            royalty.accPerShare += toContributors * ACC_SCALE / totalShares;
        }
        ledger.pool = SafeCast.toUint128(ledger.pool + msg.value - toContributors);
        emit ModelPaid(taskId, msg.sender, msg.value, toContributors);
    }

    // ------------------------------------------------------------------ relay queue

    /// @inheritdoc IDeRelay
    function joinRelay(uint256 taskId) external payable {
        Config storage config = _configs[taskId];
        if (config.turnDuration == 0) revert DeRelay__UnknownTask(taskId);
        if (msg.value < config.minStake) revert DeRelay__StakeTooLow(msg.value, config.minStake);
        Relayer storage me = _relayers[taskId][msg.sender];
        if (me.next != address(0)) revert DeRelay__AlreadyQueued(taskId, msg.sender);
        Ledger storage ledger = _ledgers[taskId];
        uint32 length = ledger.queueLength;
        if (length >= config.maxQueue) revert DeRelay__QueueFull(taskId, config.maxQueue);

        State storage state = _states[taskId];
        address front = state.holder;
        me.stake = SafeCast.toUint96(msg.value);
        ledger.queueLength = length + 1;
        if (front == address(0)) {
            me.next = msg.sender;
            me.prev = msg.sender;
        } else {
            Relayer storage first = _relayers[taskId][front];
            address tail = first.prev;
            _relayers[taskId][tail].next = msg.sender;
            me.prev = tail;
            me.next = front;
            first.prev = msg.sender;
        }
        emit RelayerJoined(taskId, msg.sender, msg.value, length + 1);
        if (front == address(0)) {
            State memory s = state;
            s.holder = msg.sender;
            s.kept = false;
            _startTurn(taskId, s, config.turnDuration);
        }
    }

    /// @inheritdoc IDeRelay
    function addStake(uint256 taskId) external payable taskExists(taskId) {
        if (msg.value == 0) revert DeRelay__ZeroAmount();
        Relayer storage me = _relayers[taskId][msg.sender];
        if (me.next == address(0)) revert DeRelay__NotQueued(taskId, msg.sender);
        uint96 stake = SafeCast.toUint96(me.stake + msg.value);
        me.stake = stake;
        emit StakeAdded(taskId, msg.sender, msg.value, stake);
    }

    /// @inheritdoc IDeRelay
    function leaveRelay(uint256 taskId) external taskExists(taskId) {
        Relayer storage me = _relayers[taskId][msg.sender];
        if (me.next == address(0)) revert DeRelay__NotQueued(taskId, msg.sender);
        State memory s = _states[taskId];
        bool holding = s.holder == msg.sender;
        if (holding && (s.phase != Phase.Turn || block.timestamp > s.phaseEnd)) {
            revert DeRelay__HolderCannotLeave(taskId, msg.sender);
        }
        uint256 refund = me.stake;
        address next = me.next;
        if (holding && next != msg.sender) {
            // Giving up a turn others wait behind costs what being skipped costs: otherwise a
            // holder could sit out its whole turn, leave at the last second and rejoin, for free.
            uint256 slash = refund * _configs[taskId].slashTimeoutBp / BP;
            refund -= slash;
            _ledgers[taskId].pool += uint128(slash);
            emit RelayerSlashed(taskId, s.round, msg.sender, slash, SlashReason.Timeout);
        }
        _unlink(taskId, msg.sender);
        withdrawable[msg.sender] += refund;
        emit RelayerLeft(taskId, msg.sender, refund, false);
        if (holding) {
            s.holder = next == msg.sender ? address(0) : next;
            s.kept = false;
            _startTurn(taskId, s, _configs[taskId].turnDuration);
        }
    }

    /// @inheritdoc IDeRelay
    function skipTurn(uint256 taskId) external {
        State memory s = _states[taskId];
        if (s.phase != Phase.Turn) _revertWrongPhase(taskId, s.phase, Phase.Turn);
        Config storage config = _configs[taskId];
        uint256 deadline = s.phaseEnd;
        if (block.timestamp <= deadline) revert DeRelay__TurnNotExpired(taskId, deadline);

        Relayer storage holder = _relayers[taskId][s.holder];
        uint256 slash = uint256(holder.stake) * config.slashTimeoutBp / BP;
        // A holder that skips its own turn earns no bounty on its own slash.
        uint256 bounty = msg.sender == s.holder ? 0 : slash * config.keeperBountyBp / BP;
        holder.stake -= uint96(slash);
        _ledgers[taskId].pool += uint128(slash - bounty);
        emit RelayerSlashed(taskId, s.round, s.holder, slash, SlashReason.Timeout);
        if (bounty != 0) {
            withdrawable[msg.sender] += bounty;
            emit KeeperPaid(taskId, s.round, msg.sender, bounty);
        }
        _endTurn(taskId, s, config, false);
    }

    // ------------------------------------------------------------------ submission

    /// @inheritdoc IDeRelay
    function submitRelay(
        uint256 taskId,
        uint32 round,
        bytes32 parentDigest,
        bytes calldata childCid,
        bytes calldata metadataCid,
        bytes32 dataCommitment,
        uint64 samples
    ) external {
        State memory s = _states[taskId];
        if (s.phase != Phase.Turn) _revertWrongPhase(taskId, s.phase, Phase.Turn);
        if (msg.sender != s.holder) revert DeRelay__NotHolder(taskId, msg.sender, s.holder);
        if (round != s.round) revert DeRelay__WrongRound(taskId, round, s.round);
        uint256 deadline = s.phaseEnd;
        if (block.timestamp > deadline) revert DeRelay__TurnExpired(taskId, deadline);
        bytes32 headDigest = _headDigests[taskId];
        if (parentDigest != headDigest) revert DeRelay__StaleParent(taskId, parentDigest, headDigest);
        (bytes32 childDigest, uint8 childCodec) = _parseCid(childCid);
        _parseCid(metadataCid);
        if (samples == 0) revert DeRelay__ZeroSamples();
        Record storage record = _records[taskId][childDigest];
        Status seen = record.status;
        if (seen == Status.None) {
            _latestDigests[taskId] = childDigest;
        } else if (seen != Status.Void || record.relayer != msg.sender || _latestDigests[taskId] != childDigest) {
            revert DeRelay__ChildSeen(taskId, childDigest);
        }
        // Counted in the ledger when finalized (finalize writes it anyway), and by taskState until then.
        s.fresh = seen == Status.None;
        _records[taskId][childDigest] = Record({
            relayer: msg.sender,
            round: round,
            submittedAt: uint32(block.timestamp),
            status: Status.Pending,
            score: 0,
            codec: childCodec
        });
        s.phase = Phase.Review;
        s.phaseEnd = uint32(_commitEnd(block.timestamp, _configs[taskId].commitWindow));
        _states[taskId] = s;
        emit RelaySubmitted(taskId, round, msg.sender, parentDigest, childCid, metadataCid, dataCommitment, samples);
    }

    // ------------------------------------------------------------------ validators

    /// @inheritdoc IDeRelay
    function registerValidator(uint256 taskId) external payable {
        Config storage config = _configs[taskId];
        if (config.turnDuration == 0) revert DeRelay__UnknownTask(taskId);
        if (msg.value < config.validatorStake) revert DeRelay__StakeTooLow(msg.value, config.validatorStake);
        Validator storage me = _validators[taskId][msg.sender];
        if (me.seatPlusOne != 0) revert DeRelay__AlreadyValidator(taskId, msg.sender);
        uint256 seats = config.maxValidators;
        for (uint256 i; i < seats; ++i) {
            Seat storage seat = _seats[taskId][i];
            if (seat.validator == address(0)) {
                // Seated after a review's commit window closed: excused from that review. Seated
                // while it is open: expected to commit, so that leaving between reviews and
                // coming back after each submission cannot hold seats for free.
                State memory s = _states[taskId];
                bool excused = s.phase == Phase.Review && block.timestamp > s.phaseEnd;
                // A free seat is all zeros (never taken, or deleted): no ballot, no misses, round 0.
                seat.validator = msg.sender;
                if (excused) seat.round = s.round;
                me.stake = SafeCast.toUint96(msg.value);
                me.seatPlusOne = uint8(i + 1);
                emit ValidatorRegistered(taskId, msg.sender, uint8(i), msg.value);
                return;
            }
        }
        revert DeRelay__SeatsFull(taskId, seats);
    }

    /// @inheritdoc IDeRelay
    function leaveValidator(uint256 taskId) external taskExists(taskId) {
        Validator memory me = _validators[taskId][msg.sender];
        if (me.seatPlusOne == 0) revert DeRelay__NotValidator(taskId, msg.sender);
        Seat storage seat = _seats[taskId][me.seatPlusOne - 1];
        State storage state = _states[taskId];
        if (
            state.phase == Phase.Review && state.holder != msg.sender
                && !(seat.round == state.round && seat.ballot == Ballot.None)
        ) {
            revert DeRelay__BallotOpen(taskId, state.round);
        }
        _removeValidator(taskId, msg.sender, me, false);
    }

    /// @inheritdoc IDeRelay
    function commitScore(uint256 taskId, uint32 round, bytes32 commitment) external {
        State memory s = _states[taskId];
        if (s.phase != Phase.Review) _revertWrongPhase(taskId, s.phase, Phase.Review);
        if (round != s.round) revert DeRelay__WrongRound(taskId, round, s.round);
        uint256 commitEnd = s.phaseEnd;
        if (block.timestamp > commitEnd) revert DeRelay__CommitClosed(taskId, commitEnd);
        if (msg.sender == s.holder) revert DeRelay__SelfReview(taskId, msg.sender);
        uint256 seatPlusOne = _validators[taskId][msg.sender].seatPlusOne;
        if (seatPlusOne == 0) revert DeRelay__NotValidator(taskId, msg.sender);
        Seat storage seat = _seats[taskId][seatPlusOne - 1];
        if (seat.round == round && seat.ballot != Ballot.None) revert DeRelay__AlreadyCommitted(taskId, round);

        seat.round = round;
        seat.childScore = 0;
        seat.championScore = 0;
        seat.parentScore = 0;
        seat.ballot = Ballot.Committed;
        _commitments[taskId][seatPlusOne - 1] = commitment;
        emit ScoreCommitted(taskId, round, msg.sender, commitment);
    }

    /// @inheritdoc IDeRelay
    function revealScore(
        uint256 taskId,
        uint32 round,
        uint16 childScore,
        uint16 championScore,
        uint16 parentScore,
        bytes32 salt
    ) external {
        State memory s = _states[taskId];
        if (s.phase != Phase.Review) _revertWrongPhase(taskId, s.phase, Phase.Review);
        if (round != s.round) revert DeRelay__WrongRound(taskId, round, s.round);
        uint256 commitEnd = s.phaseEnd;
        if (block.timestamp <= commitEnd) revert DeRelay__RevealNotOpen(taskId, commitEnd);
        uint256 revealEnd = _revealEnd(commitEnd, _configs[taskId].revealWindow);
        if (block.timestamp > revealEnd) revert DeRelay__RevealClosed(taskId, revealEnd);
        if (childScore > BP) revert DeRelay__ScoreOutOfRange(childScore);
        if (championScore > BP) revert DeRelay__ScoreOutOfRange(championScore);
        if (parentScore > BP) revert DeRelay__ScoreOutOfRange(parentScore);
        uint256 seatPlusOne = _validators[taskId][msg.sender].seatPlusOne;
        if (seatPlusOne == 0) revert DeRelay__NotValidator(taskId, msg.sender);
        Seat storage seat = _seats[taskId][seatPlusOne - 1];
        if (seat.round != round || seat.ballot == Ballot.None) revert DeRelay__NotCommitted(taskId, round);
        if (seat.ballot == Ballot.Revealed) revert DeRelay__AlreadyRevealed(taskId, round);
        if (
            commitmentFor(taskId, round, childScore, championScore, parentScore, salt, msg.sender)
                != _commitments[taskId][seatPlusOne - 1]
        ) {
            revert DeRelay__RevealMismatch(taskId, round);
        }

        seat.childScore = childScore;
        seat.championScore = championScore;
        seat.parentScore = parentScore;
        seat.ballot = Ballot.Revealed;
        seat.misses = 0;
        emit ScoreRevealed(taskId, round, msg.sender, childScore, championScore, parentScore);
    }

    // ------------------------------------------------------------------ verdict

    /// @inheritdoc IDeRelay
    /// @dev Reads as the protocol: tally the ballots, decide the verdict, settle with the relayer,
    /// record and announce it, pay the validators and the keeper of a decided review, charge the
    /// validators that failed it, and end the turn. No step sends ether (every credit is a pull
    /// payment), so nothing here can re-enter.
    function finalize(uint256 taskId) external {
        State memory s = _states[taskId];
        if (s.phase != Phase.Review) _revertWrongPhase(taskId, s.phase, Phase.Review);
        Config storage config = _configs[taskId];
        Tally memory t = _tally(taskId, s, config.maxValidators);
        _requireReviewOver(taskId, s, config, t);

        Ledger memory ledger = _ledgers[taskId];
        if (s.fresh) ledger.submissionCount += 1;
        bytes32 child = _latestDigests[taskId];
        Outcome memory o = _decide(config, t);
        if (o.verdict != Status.Void) _settleRelayer(taskId, s, ledger, config, child, o);
        _recordVerdict(taskId, s, child, o, t.reveals);
        if (o.verdict != Status.Void) _payReview(taskId, s.round, config, ledger, t, o);
        if (o.verdict == Status.Rejected) _markOutvoted(config, t, o.delta);
        _chargeValidators(taskId, s.round, config, ledger, t);
        _ledgers[taskId] = ledger;
        _endTurn(taskId, s, config, o.verdict == Status.Void);
    }

    // ------------------------------------------------------------------ money out

    /// @inheritdoc IDeRelay
    function claimRoyalties(uint256 taskId) external taskExists(taskId) {
        _settle(taskId, msg.sender, _royalties[taskId].accPerShare);
    }

    /// @inheritdoc IDeRelay
    function withdraw() external nonReentrant {
        uint256 amount = withdrawable[msg.sender];
        if (amount == 0) revert DeRelay__NothingToWithdraw(msg.sender);
        withdrawable[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IDeRelay
    function commitmentFor(
        uint256 taskId,
        uint32 round,
        uint16 childScore,
        uint16 championScore,
        uint16 parentScore,
        bytes32 salt,
        address validator
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(taskId, round, childScore, championScore, parentScore, salt, validator));
    }

    /// @inheritdoc IDeRelay
    function taskParams(uint256 taskId) external view taskExists(taskId) returns (TaskParams memory p) {
        Config storage c = _configs[taskId];
        p.minStake = c.minStake;
        p.validatorStake = c.validatorStake;
        p.turnDuration = c.turnDuration;
        p.commitWindow = c.commitWindow;
        p.revealWindow = c.revealWindow;
        p.quorum = c.quorum;
        p.maxValidators = c.maxValidators;
        p.maxQueue = c.maxQueue;
        p.slashBand = c.slashBand;
        p.advanceBand = c.advanceBand;
        p.maxMisses = c.maxMisses;
        p.minGain = c.minGain;
        p.baseReward = c.baseReward;
        p.rewardPerPoint = c.rewardPerPoint;
        p.slashTimeoutBp = c.slashTimeoutBp;
        p.slashRejectBp = c.slashRejectBp;
        p.slashNoRevealBp = c.slashNoRevealBp;
        p.slashMissBp = c.slashMissBp;
        p.bandBp = c.bandBp;
        p.validatorFee = c.validatorFee;
        p.keeperBountyBp = c.keeperBountyBp;
        p.royaltyBp = _royalties[taskId].royaltyBp;
        p.usageFee = _royalties[taskId].usageFee;
        p.genesisScore = c.genesisScore;
        p.specCid = _encodeCid(c.specDigest, c.specCodec);
        bytes32 genesis = _genesisDigests[taskId];
        p.genesisCid = _encodeCid(genesis, _records[taskId][genesis].codec);
    }

    /// @inheritdoc IDeRelay
    function publisherOf(uint256 taskId) external view taskExists(taskId) returns (address) {
        return _configs[taskId].publisher;
    }

    /// @inheritdoc IDeRelay
    function taskState(uint256 taskId) external view taskExists(taskId) returns (TaskView memory v) {
        State memory s = _states[taskId];
        Ledger memory ledger = _ledgers[taskId];
        Config storage c = _configs[taskId];
        v.phase = s.phase;
        v.round = s.round;
        v.holder = s.holder;
        v.phaseStart = s.phaseEnd;
        if (s.phase == Phase.Turn) {
            v.deadline = s.phaseEnd;
            v.phaseStart = uint64(_windowStart(s.phaseEnd, c.turnDuration));
        } else if (s.phase == Phase.Review) {
            v.deadline = s.phaseEnd;
            v.phaseStart = uint64(_windowStart(s.phaseEnd, c.commitWindow));
            v.revealEnd = uint64(_revealEnd(s.phaseEnd, c.revealWindow));
        }
        v.pool = ledger.pool;
        v.queueLength = ledger.queueLength;
        v.submissionCount = ledger.submissionCount + (s.phase == Phase.Review && s.fresh ? 1 : 0);
        v.acceptedCount = ledger.acceptedCount;
        v.championScore = ledger.championScore;
        v.headScore = ledger.headScore;
        v.headCid = _encodeCid(_headDigests[taskId], s.headCodec);
        bytes32 championDigest = _championDigests[taskId];
        v.championCid = _encodeCid(championDigest, _records[taskId][championDigest].codec);
        for (uint256 i; i < c.maxValidators; ++i) {
            if (_seats[taskId][i].validator != address(0)) ++v.validatorCount;
        }
        v.totalShares = _royalties[taskId].totalShares;
        v.accPerShare = _royalties[taskId].accPerShare;
    }

    /// @inheritdoc IDeRelay
    function head(uint256 taskId) external view taskExists(taskId) returns (bytes memory cid, uint16 score) {
        return (_encodeCid(_headDigests[taskId], _states[taskId].headCodec), _ledgers[taskId].headScore);
    }

    /// @inheritdoc IDeRelay
    function champion(uint256 taskId) external view taskExists(taskId) returns (bytes memory cid, uint16 score) {
        bytes32 digest = _championDigests[taskId];
        return (_encodeCid(digest, _records[taskId][digest].codec), _ledgers[taskId].championScore);
    }

    /// @inheritdoc IDeRelay
    function queuePage(uint256 taskId, address cursor, uint256 limit)
        external
        view
        taskExists(taskId)
        returns (address[] memory members, uint256[] memory stakes, address nextCursor)
    {
        address front = _states[taskId].holder;
        address at = cursor == address(0) ? front : cursor;
        if (at != address(0) && _relayers[taskId][at].next == address(0)) revert DeRelay__NotQueued(taskId, at);
        uint256 n = _ledgers[taskId].queueLength;
        if (limit < n) n = limit;
        members = new address[](n);
        stakes = new uint256[](n);
        uint256 count;
        while (count < n && at != address(0)) {
            Relayer storage r = _relayers[taskId][at];
            members[count] = at;
            stakes[count] = r.stake;
            ++count;
            at = r.next == front ? address(0) : r.next;
        }
        assembly ("memory-safe") {
            mstore(members, count)
            mstore(stakes, count)
        }
        nextCursor = at;
    }

    /// @inheritdoc IDeRelay
    function latestSubmission(uint256 taskId)
        external
        view
        taskExists(taskId)
        returns (bytes memory cid, Record memory record)
    {
        bytes32 digest = _latestDigests[taskId];
        if (digest == bytes32(0)) digest = _genesisDigests[taskId];
        record = _records[taskId][digest];
        cid = _encodeCid(digest, record.codec);
    }

    /// @inheritdoc IDeRelay
    function recordOf(uint256 taskId, bytes32 digest) external view taskExists(taskId) returns (Record memory) {
        return _records[taskId][digest];
    }

    /// @inheritdoc IDeRelay
    function seatsOf(uint256 taskId) external view taskExists(taskId) returns (Seat[] memory seats) {
        uint256 n = _configs[taskId].maxValidators;
        seats = new Seat[](n);
        for (uint256 i; i < n; ++i) {
            seats[i] = _seats[taskId][i];
        }
    }

    /// @inheritdoc IDeRelay
    function accountOf(uint256 taskId, address account) external view taskExists(taskId) returns (AccountView memory v) {
        Relayer storage r = _relayers[taskId][account];
        Validator memory val = _validators[taskId][account];
        v.withdrawable = withdrawable[account];
        v.relayerStake = r.stake;
        v.queued = r.next != address(0);
        v.validatorStake = val.stake;
        v.seat = int16(int256(uint256(val.seatPlusOne)) - 1);
        v.shares = _contributors[taskId][account].shares;
        v.pendingRoyalties = _pendingRoyalties(taskId, account, _royalties[taskId].accPerShare);
    }

    // ------------------------------------------------------------------ internals

    /// @dev The phase check of the hot paths: a task that does not exist is Idle, so only on this
    /// failure path is it worth reading `taskCount` to tell the two apart.
    function _revertWrongPhase(uint256 taskId, Phase phase, Phase required) private view {
        if (taskId == 0 || taskId > taskCount) revert DeRelay__UnknownTask(taskId);
        revert DeRelay__WrongPhase(taskId, phase, required);
    }

    /// @dev Gather the ballots of round `s.round` in seat order: the reveals (paired scores and their
    /// differences), the seats that committed and did not reveal, and the seats that could have
    /// committed and did not (occupied, not the holder, not seated during this review).
    function _tally(uint256 taskId, State memory s, uint256 maxValidators) private view returns (Tally memory t) {
        t.child = new int256[](maxValidators);
        t.champion = new int256[](maxValidators);
        t.delta = new int256[](maxValidators);
        t.progress = new int256[](maxValidators);
        t.revealers = new address[](maxValidators);
        for (uint256 i; i < maxValidators; ++i) {
            Seat memory seat = _seats[taskId][i];
            if (seat.validator == address(0) || seat.validator == s.holder) continue;
            if (seat.round != s.round) {
                t.missed |= 1 << i;
            } else if (seat.ballot == Ballot.Revealed) {
                uint256 n = t.reveals;
                t.child[n] = int256(uint256(seat.childScore));
                t.champion[n] = int256(uint256(seat.championScore));
                t.delta[n] = int256(uint256(seat.childScore)) - int256(uint256(seat.championScore));
                t.progress[n] = int256(uint256(seat.childScore)) - int256(uint256(seat.parentScore));
                t.revealers[n] = seat.validator;
                t.reveals = n + 1;
                t.revealed |= 1 << i;
            } else if (seat.ballot == Ballot.Committed) {
                t.silent |= 1 << i;
            }
        }
    }

    /// @dev Revert unless the review is over: the reveal window has ended, or the commit window has
    /// and every validator that committed has revealed.
    function _requireReviewOver(uint256 taskId, State memory s, Config storage config, Tally memory t) private view {
        uint256 commitEnd = s.phaseEnd;
        uint256 revealEnd = _revealEnd(commitEnd, config.revealWindow);
        if (block.timestamp <= revealEnd && (t.silent != 0 || block.timestamp <= commitEnd)) {
            revert DeRelay__ReviewOpen(taskId, revealEnd);
        }
    }

    /// @dev The review's outcome from its reveals: void below quorum, else the lower medians and their verdict.
    function _decide(Config storage config, Tally memory t) private view returns (Outcome memory o) {
        if (t.reveals < config.quorum) {
            o.verdict = Status.Void;
            return o;
        }
        o.childScore = uint256(_lowerMedian(t.child, t.reveals));
        o.championScore = uint256(_lowerMedian(t.champion, t.reveals));
        o.delta = _lowerMedian(t.delta, t.reveals);
        o.progress = _lowerMedian(t.progress, t.reveals);
        o.verdict = _verdict(config, o.childScore, o.delta);
    }

    /// @dev Settle a decided review with the relayer: record the champion's new median, then advance
    /// the head (and reward a crowned child, into `o.reward`) or slash a rejected child's relayer.
    function _settleRelayer(
        uint256 taskId,
        State memory s,
        Ledger memory ledger,
        Config storage config,
        bytes32 child,
        Outcome memory o
    ) private {
        ledger.championScore = uint16(o.championScore);
        if (o.verdict == Status.Accepted) {
            o.reward = _advance(taskId, s, ledger, config, child, o.childScore, o.delta, o.progress);
        } else if (o.verdict == Status.Rejected) {
            _slashRelayer(taskId, s, ledger, config.slashRejectBp, SlashReason.Rejected);
        }
    }

    /// @dev Record the child's verdict and median score, and announce the round's outcome.
    function _recordVerdict(uint256 taskId, State memory s, bytes32 child, Outcome memory o, uint256 reveals)
        private
    {
        Record storage record = _records[taskId][child];
        record.status = o.verdict;
        record.score = uint16(o.childScore);
        emit RoundFinalized(
            taskId, s.round, s.holder, o.verdict, uint16(o.childScore), uint16(o.championScore), int16(o.delta),
            int16(o.progress), uint8(reveals), o.reward
        );
    }

    /// @dev Pay a decided review's in-band validators their fees, then its keeper the finalize bounty.
    function _payReview(
        uint256 taskId,
        uint32 round,
        Config storage config,
        Ledger memory ledger,
        Tally memory t,
        Outcome memory o
    ) private {
        _payValidators(taskId, round, config, ledger, t, o.childScore, o.delta);
        _payKeeper(taskId, round, config, ledger);
    }

    /// @dev The verdict of a decided review from the child's median score and the median delta.
    function _verdict(Config storage config, uint256 childScore, int256 delta) private view returns (Status) {
        if (childScore == 0 || delta < -int256(uint256(config.slashBand))) return Status.Rejected;
        if (delta < -int256(uint256(config.advanceBand))) return Status.Held;
        return Status.Accepted;
    }

    /// @dev The child becomes the head; if it beat the champion by `minGain` or more it becomes the
    /// champion too, and its relayer is paid from the pool, and given as many royalty shares, for
    /// what it added itself: `gain = min(delta, progress)`, its gain over the champion and over its
    /// own parent, whichever is less (progress made by others and not yet crowned is not its own).
    function _advance(
        uint256 taskId,
        State memory s,
        Ledger memory ledger,
        Config storage config,
        bytes32 child,
        uint256 childScore,
        int256 delta,
        int256 progress
    ) private returns (uint256 reward) {
        uint8 codec = _records[taskId][child].codec;
        _headDigests[taskId] = child;
        s.headCodec = codec;
        ledger.headScore = uint16(childScore);
        ledger.acceptedCount += 1;
        if (delta < int256(uint256(config.minGain))) return 0;

        _championDigests[taskId] = child;
        ledger.championScore = uint16(childScore);
        emit ChampionCrowned(taskId, s.round, s.holder, child, uint16(childScore), uint16(uint256(delta)));
        if (progress <= 0) return 0;
        uint256 gain = uint256(progress < delta ? progress : delta);
        reward = (gain >= config.minGain ? uint256(config.baseReward) : 0) + uint256(config.rewardPerPoint) * gain;
        if (reward > ledger.pool) reward = ledger.pool;
        if (reward != 0) {
            ledger.pool -= uint128(reward);
            Royalty storage royalty = _royalties[taskId];
            _settle(taskId, s.holder, royalty.accPerShare);
            _contributors[taskId][s.holder].shares += reward;
            royalty.totalShares += uint128(reward); // reward <= pool, a uint128
            withdrawable[s.holder] += reward;
        }
    }

    /// @dev The holder loses `bp` of its stake to the pool.
    function _slashRelayer(uint256 taskId, State memory s, Ledger memory ledger, uint256 bp, SlashReason reason)
        private
    {
        Relayer storage relayer = _relayers[taskId][s.holder];
        uint256 slash = uint256(relayer.stake) * bp / BP;
        relayer.stake -= uint96(slash);
        ledger.pool += uint128(slash);
        emit RelayerSlashed(taskId, s.round, s.holder, slash, reason);
    }

    /// @dev Credit `validatorFee` from the pool to every reveal within `bandBp` of both the child's
    /// median and the median delta, in seat order while the pool lasts. Both: a validator that skips
    /// the work and reveals two equal guesses lands near a median delta of 0 but not near the child's
    /// score unless it knows it.
    function _payValidators(
        uint256 taskId,
        uint32 round,
        Config storage config,
        Ledger memory ledger,
        Tally memory t,
        uint256 childScore,
        int256 delta
    ) private {
        uint256 fee = config.validatorFee;
        if (fee == 0) return;
        int256 band = int256(uint256(config.bandBp));
        for (uint256 i; i < t.reveals; ++i) {
            if (fee > ledger.pool) return;
            if (!_within(t.child[i], int256(childScore), band) || !_within(t.delta[i], delta, band)) continue;
            ledger.pool -= uint128(fee);
            withdrawable[t.revealers[i]] += fee;
            emit ValidatorPaid(taskId, round, t.revealers[i], fee);
        }
    }

    /// @dev In a rejected review, mark in `t.outvoted` every reveal whose delta lies more than
    /// `slashBand` above the median `delta`, when more than half of the reveals lie within `slashBand`
    /// of it: it passed a child that a strict majority found bad enough to reject. With no such
    /// majority nobody is named. Honest reveals are never that far apart (the validators hold
    /// samples of the same data), while a validator that reveals without scoring (the last published
    /// medians, say) is that far whenever a child is that bad. Only a rejection, and only the side
    /// that passed the child: a majority that crowns a bad child cannot charge the honest minority.
    function _markOutvoted(Config storage config, Tally memory t, int256 delta) private view {
        int256 band = int256(uint256(config.slashBand));
        uint256 above; // bit n: reveal n passed the child
        uint256 agree;
        for (uint256 n; n < t.reveals; ++n) {
            int256 d = t.delta[n];
            if (d > delta + band) above |= 1 << n;
            else if (d >= delta - band) ++agree;
        }
        if (above == 0 || 2 * agree <= t.reveals) return;
        uint256 seats = t.revealed;
        for (uint256 i; seats != 0; ++i) {
            if (seats & 1 != 0) {
                if (above & 1 != 0) t.outvoted |= 1 << i;
                above >>= 1;
            }
            seats >>= 1;
        }
    }

    function _within(int256 value, int256 centre, int256 band) private pure returns (bool) {
        return value >= centre - band && value <= centre + band;
    }

    /// @dev Pay the finalizer `validatorFee * keeperBountyBp / BP` from the pool, as far as it lasts.
    function _payKeeper(uint256 taskId, uint32 round, Config storage config, Ledger memory ledger) private {
        uint256 bounty = uint256(config.validatorFee) * config.keeperBountyBp / BP;
        if (bounty > ledger.pool) bounty = ledger.pool;
        if (bounty == 0) return;
        ledger.pool -= uint128(bounty);
        withdrawable[msg.sender] += bounty;
        emit KeeperPaid(taskId, round, msg.sender, bounty);
    }

    /// @dev Charge the validators of `round` that failed it, stake to the pool: a committed, unrevealed
    /// ballot, or a reveal that passed a rejected child (`_markOutvoted`), costs `slashNoRevealBp`; a
    /// missed commit costs `slashMissBp` and counts towards `maxMisses`. A validator left under
    /// `validatorStake`, or at `maxMisses`, loses its seat and gets the rest of its stake back.
    function _chargeValidators(uint256 taskId, uint32 round, Config storage config, Ledger memory ledger, Tally memory t)
        private
    {
        uint256 failed = t.silent | t.missed | t.outvoted;
        for (uint256 i; failed != 0; ++i) {
            if (failed & 1 != 0) {
                Seat storage seat = _seats[taskId][i];
                address account = seat.validator;
                Validator memory v = _validators[taskId][account];
                bool missed = (t.missed >> i) & 1 != 0;
                uint256 slash = uint256(v.stake) * (missed ? config.slashMissBp : config.slashNoRevealBp) / BP;
                v.stake -= uint96(slash);
                ledger.pool += uint128(slash);
                // A review without a reveal from the seat (no commit, or a commit left unrevealed)
                // is a miss: a stake of any size keeps a seat that never reveals for maxMisses reviews.
                uint8 misses;
                if ((t.outvoted >> i) & 1 != 0) {
                    emit ValidatorOutvoted(taskId, round, account, slash);
                } else {
                    misses = seat.misses + 1;
                    seat.misses = misses;
                    if (missed) {
                        emit ValidatorMissed(taskId, round, account, slash, misses);
                    } else {
                        seat.ballot = Ballot.None;
                        emit ValidatorSlashed(taskId, round, account, slash, misses);
                    }
                }
                if (v.stake < config.validatorStake || misses >= config.maxMisses) {
                    _removeValidator(taskId, account, v, true);
                } else {
                    _validators[taskId][account].stake = v.stake;
                }
            }
            failed >>= 1;
        }
    }

    function _removeValidator(uint256 taskId, address account, Validator memory v, bool forced) private {
        delete _seats[taskId][v.seatPlusOne - 1];
        delete _validators[taskId][account];
        withdrawable[account] += v.stake;
        emit ValidatorLeft(taskId, account, v.stake, forced);
    }

    /// @dev After a finalize or skip: the holder goes to the tail (or leaves, if its stake fell
    /// below minStake) and the next turn starts; with an empty queue the relay goes idle. After a
    /// void review (`voided`) the holder keeps the front for one more round, to have its child
    /// decided; after a second void in a row it goes to the tail like any other (a holder that
    /// also holds a seat, or validators that never reach a quorum, cannot keep the turn forever).
    function _endTurn(uint256 taskId, State memory s, Config storage config, bool voided) private {
        address holder = s.holder;
        Relayer storage r = _relayers[taskId][holder];
        uint256 stake = r.stake;
        address next = r.next;
        bool keep = voided && !s.kept && stake >= config.minStake;
        if (stake < config.minStake) {
            _unlink(taskId, holder);
            withdrawable[holder] += stake;
            emit RelayerLeft(taskId, holder, stake, true);
            next = next == holder ? address(0) : next;
        }
        s.kept = keep;
        s.holder = keep ? holder : next;
        _startTurn(taskId, s, config.turnDuration);
    }

    /// @dev Start the next round for `s.holder`, or go idle when there is none. Writes the state slot.
    function _startTurn(uint256 taskId, State memory s, uint256 turnDuration) private {
        if (s.holder == address(0)) {
            s.phase = Phase.Idle;
            s.phaseEnd = uint32(block.timestamp);
            _states[taskId] = s;
            return;
        }
        uint256 deadline = _turnDeadline(block.timestamp, turnDuration);
        s.round += 1;
        s.phase = Phase.Turn;
        s.phaseEnd = uint32(deadline);
        _states[taskId] = s;
        emit TurnStarted(taskId, s.round, s.holder, uint64(deadline));
    }

    // The deadlines. The state slot keeps the current phase's end (`State.phaseEnd`): a turn's
    // deadline, or a review's commit end; these are the only places that work one out.

    /// @dev The deadline of a turn that starts at `start`: the holder may submit until then.
    function _turnDeadline(uint256 start, uint256 turnDuration) private pure returns (uint256) {
        return start + turnDuration;
    }

    /// @dev The end of the commit window of a review that starts with a submission at `submittedAt`.
    function _commitEnd(uint256 submittedAt, uint256 commitWindow) private pure returns (uint256) {
        return submittedAt + commitWindow;
    }

    /// @dev The end of the reveal window, which opens when the commit window ends.
    function _revealEnd(uint256 commitEnd, uint256 revealWindow) private pure returns (uint256) {
        return commitEnd + revealWindow;
    }

    /// @dev When a phase of length `window` that ends at `end` began (the inverse of the above).
    function _windowStart(uint256 end, uint256 window) private pure returns (uint256) {
        return end - window;
    }

    /// @dev Remove `account` from the circular queue. The caller makes sure it is queued.
    function _unlink(uint256 taskId, address account) private {
        mapping(address => Relayer) storage relayers = _relayers[taskId];
        Relayer storage me = relayers[account];
        address next = me.next;
        address prev = me.prev;
        if (next != account) {
            relayers[prev].next = next;
            relayers[next].prev = prev;
        }
        State storage state = _states[taskId];
        if (state.holder == account) state.holder = next == account ? address(0) : next;
        delete relayers[account];
        _ledgers[taskId].queueLength -= 1;
    }

    /// @dev Move `account`'s royalties owed up to `accPerShare` into its withdrawable balance.
    function _settle(uint256 taskId, address account, uint256 accPerShare) private {
        Contributor storage c = _contributors[taskId][account];
        if (c.accPaid == accPerShare) return;
        uint256 owed = _pendingRoyalties(taskId, account, accPerShare);
        c.accPaid = accPerShare;
        if (owed != 0) {
            withdrawable[account] += owed;
            emit RoyaltiesSettled(taskId, account, owed);
        }
    }

    function _pendingRoyalties(uint256 taskId, address account, uint256 accPerShare) private view returns (uint256) {
        Contributor storage c = _contributors[taskId][account];
        return c.shares * (accPerShare - c.accPaid) / ACC_SCALE;
    }

    /// @dev The lower median of `values[0..n)`, n >= 1, by insertion sort of a copy (n <= 16):
    /// `values` stays paired with the revealers it came with.
    function _lowerMedian(int256[] memory values, uint256 n) private pure returns (int256) {
        int256[] memory sorted = new int256[](n);
        for (uint256 i; i < n; ++i) {
            int256 v = values[i];
            uint256 j = i;
            while (j > 0 && sorted[j - 1] > v) {
                sorted[j] = sorted[j - 1];
                --j;
            }
            sorted[j] = v;
        }
        return sorted[(n - 1) / 2];
    }

    /// @dev Split a binary CIDv1 (0x01, codec raw|dag-pb, 0x12 sha2-256, 0x20 length, digest).
    function _parseCid(bytes calldata cid) private pure returns (bytes32 digest, uint8 codec) {
        if (cid.length != CID_LENGTH || cid[0] != 0x01 || cid[2] != 0x12 || cid[3] != 0x20) {
            revert DeRelay__InvalidCid(cid);
        }
        codec = uint8(cid[1]);
        if (codec != CODEC_RAW && codec != CODEC_DAG_PB) revert DeRelay__InvalidCid(cid);
        digest = bytes32(cid[4:36]);
    }

    function _encodeCid(bytes32 digest, uint8 codec) private pure returns (bytes memory) {
        return abi.encodePacked(uint8(0x01), codec, uint8(0x12), uint8(0x20), digest);
    }

    function _checkParams(TaskParams calldata p) private pure {
        _checkRange("minStake", p.minStake, 1, type(uint80).max);
        _checkRange("validatorStake", p.validatorStake, 1, type(uint80).max);
        _checkRange("turnDuration", p.turnDuration, 1, MAX_WINDOW);
        _checkRange("commitWindow", p.commitWindow, 1, MAX_WINDOW);
        _checkRange("revealWindow", p.revealWindow, 1, MAX_WINDOW);
        _checkRange("maxValidators", p.maxValidators, 1, MAX_VALIDATORS);
        _checkRange("quorum", p.quorum, 1, p.maxValidators);
        _checkRange("maxQueue", p.maxQueue, 1, type(uint32).max);
        _checkRange("slashBand", p.slashBand, 0, BP);
        _checkRange("advanceBand", p.advanceBand, 0, p.slashBand);
        _checkRange("maxMisses", p.maxMisses, 1, type(uint8).max);
        _checkRange("minGain", p.minGain, 1, BP);
        _checkRange("slashTimeoutBp", p.slashTimeoutBp, 0, BP);
        _checkRange("slashRejectBp", p.slashRejectBp, 0, BP);
        _checkRange("slashNoRevealBp", p.slashNoRevealBp, 0, BP);
        _checkRange("slashMissBp", p.slashMissBp, 0, BP);
        _checkRange("bandBp", p.bandBp, 0, BP);
        _checkRange("keeperBountyBp", p.keeperBountyBp, 0, BP);
        _checkRange("royaltyBp", p.royaltyBp, 0, BP);
        _checkRange("genesisScore", p.genesisScore, 0, BP);
    }

    function _checkRange(string memory name, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert DeRelay__InvalidParameter(name, value);
    }
}
