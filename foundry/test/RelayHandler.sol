// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDeRelay} from "derelay/IDeRelay.sol";
import {Fixtures} from "./utils/Fixtures.sol";
import {IDeRelayRelayer, RevertingReceiver} from "derelay/test/RevertingReceiver.sol";
import {IWithdraw, ReentrantOnceWithdrawer} from "./Adversaries.sol";
import {Vm, VM_ADDRESS} from "./utils/Vm.sol";

/// @title RelayHandler: every role of DeRelay, driven by forge's invariant runner
/// @notice Each public function below (but the probe and the views) is one action the runner
/// calls with random seeds. Seeds pick a task, an actor and arguments that are valid most of the
/// time (the right holder, round, parent, a seated validator without a ballot, a stake at the
/// minimum...), and wrong one time in eight, so that most calls do real work and the checks on
/// the way in are exercised too. `playRound` plays a whole round in one call, so that campaigns
/// reach many verdicts. Time moves by `warpToEdge` (one second before, on, or one second after
/// the next window's edge), `warpBy` and `playRound` (just past the windows it waits for).
///
/// Behind the ballots is a small world, as in tests/contracts/test_stateful.py: every model has a
/// true quality (bp; 0 for junk weights that do not load) and every validator a bias (how hard
/// its held-out data is). An honest validator scores a model at quality + bias; boosters vouch
/// for any child, sinkers vote every child down, lazy ones reveal three equal guesses, silent
/// ones commit and never reveal, squatters never commit.
///
/// Ghosts: every wei in and out, each address's credits (increases of its withdrawable balance)
/// and withdrawals, the rewards paid to crowned children, royalty payments (which bound the
/// rounding dust), and every call whose effect on money differed from what the rules say.
contract RelayHandler {
    Vm private constant vm = Vm(VM_ADDRESS);

    uint256 private constant BP = 10_000;
    uint256 private constant ACC_SCALE = 1e18;
    /// @dev True qualities stay in [QMIN, QMAX] and biases in [BIAS_MIN, BIAS_MAX], so an honest
    /// score never clamps at 0 or 10000 (every honest validator measures the true differences).
    uint256 private constant QMIN = 1500;
    uint256 private constant QMAX = 8000;
    int256 private constant BIAS_MIN = -1000;
    int256 private constant BIAS_MAX = 500;
    uint256 private constant GENESIS_QUALITY = 5000;
    uint16 private constant GUESS = 5000;
    /// @notice Tasks the campaign creates at most (the set-up creates the first).
    uint256 public constant MAX_TASKS = 2;
    uint256 private constant ACTOR_FUNDS = 1e30;

    /// @notice How a validator votes.
    enum Behaviour {
        Honest,
        Booster,
        Sinker,
        Lazy,
        Silent,
        Squatter
    }

    /// @notice What the runner's probe found.
    enum ProbeOutcome {
        None,
        Crowned,
        OutvotedByLiars
    }

    struct Vote {
        uint32 round;
        uint16 child;
        uint16 champion;
        uint16 parent;
        bytes32 salt;
    }

    /// @dev A submission's arguments, some of them spoiled on purpose.
    struct Attempt {
        address sender;
        uint32 round;
        bytes32 parent;
        bytes child;
        uint64 samples;
    }

    /// @dev A finalize's verdict as the ballots on chain decide it (the rules of DeRelay.finalize
    /// and derelay/lab/metrics.py::review, written again here).
    struct Review {
        IDeRelay.Status verdict;
        int256 delta;
        int256 progress;
        uint256 reveals;
    }

    IDeRelay public immutable relay;

    address public immutable publisher;
    address[] private _relayers; // the dual relayer-validator first, then EOAs and two contracts
    address[] private _validators; // EOAs and the dual
    address[] private _keepers;
    address[] private _consumers;
    address[] private _actors; // everyone above, once: the only addresses that can hold anything
    address public immutable revertingReceiver;
    address payable public immutable reentrant;

    mapping(address => Behaviour) public behaviour;
    mapping(address => int256) public bias;

    /// @notice The campaign's clock: forge keeps state between calls of a run, not the block's
    /// time, so every action warps here first.
    uint256 public clock;
    uint256 private _labels;

    mapping(uint256 task => mapping(bytes32 digest => uint256)) private _quality; // 0: junk
    mapping(uint256 task => mapping(address validator => Vote)) private _votes;

    // ------------------------------------------------------------------ ghosts

    /// @notice Every wei sent to the contract, and every wei it sent.
    uint256 public ghostIn;
    uint256 public ghostOut;
    /// @notice Increases of each address's withdrawable balance, and what withdraw paid it.
    mapping(address => uint256) public ghostCredited;
    mapping(address => uint256) public ghostWithdrawn;
    /// @notice payForModel calls per task: each may leave at most one wei of dust per contributor.
    mapping(uint256 => uint256) public ghostPayments;
    /// @notice Rewards finalize paid to crowned children, per task, as the rules compute them.
    mapping(uint256 => uint256) public ghostRewards;
    /// @notice Calls after which a task's shares moved other than by a crowned child's reward.
    uint256 public ghostShareBreaks;
    /// @notice Calls whose verdict, slash, bounty, reward or pool movement differed from the rules.
    uint256 public ghostRuleBreaks;
    string public lastRuleBreak;
    /// @notice Credits that vanished other than by withdraw.
    uint256 public ghostLostCredits;

    /// @dev Storage slot of `DeRelay.withdrawable`, found by `createFirstTask`: the per-call
    /// snapshot of every address's credit reads storage instead of calling the getter.
    uint256 private _withdrawableSlot;

    constructor(IDeRelay relay_) {
        relay = relay_;
        publisher = _actor("publisher", 0x100);
        for (uint160 i; i < 4; ++i) {
            _relayers.push(_actor("relayer", 0x200 + i));
        }
        address receiver = address(new RevertingReceiver(IDeRelayRelayer(address(relay_))));
        address withdrawer = address(new ReentrantOnceWithdrawer(IWithdraw(address(relay_))));
        revertingReceiver = receiver;
        reentrant = payable(withdrawer);
        for (uint256 i; i < 2; ++i) {
            address a = i == 0 ? receiver : withdrawer;
            vm.deal(a, ACTOR_FUNDS);
            vm.label(a, i == 0 ? "reverting receiver" : "reentrant withdrawer");
            _relayers.push(a);
            _actors.push(a);
        }
        _validators.push(_relayers[0]); // the dual: relays and validates (self-review is refused)
        int16[5] memory biases = [int16(-300), 0, 200, 0, -300];
        for (uint160 i; i < 5; ++i) {
            address v = _actor("validator", 0x300 + i);
            _validators.push(v);
            bias[v] = biases[i];
        }
        for (uint160 i; i < 2; ++i) {
            _keepers.push(_actor("keeper", 0x400 + i));
            _consumers.push(_actor("consumer", 0x500 + i));
        }
        clock = 1_700_000_000;
        vm.warp(clock);
    }

    function _actor(string memory role, uint160 key) private returns (address a) {
        a = address(key << 8);
        vm.deal(a, ACTOR_FUNDS);
        vm.label(a, role);
        _actors.push(a);
    }

    // ------------------------------------------------------------------ set-up

    /// @notice The first task, with the contract tests' default parameters and a 10 ether pool;
    /// then, in a snapshot that is rolled back, a relayer joins and leaves so that its refund
    /// shows where `withdrawable` lives in storage.
    function createFirstTask() external returns (uint256 taskId) {
        taskId = _create(_defaultParams(), 10 ether);
        uint256 snapshot = vm.snapshotState();
        address probe = _relayers[1];
        vm.prank(probe);
        relay.joinRelay{value: 3 ether}(taskId);
        vm.prank(probe);
        relay.leaveRelay(taskId);
        uint256 slot;
        while (slot < 64 && uint256(vm.load(address(relay), keccak256(abi.encode(probe, slot)))) != 3 ether) {
            ++slot;
        }
        vm.revertToState(snapshot);
        require(slot < 64, "DeRelay.withdrawable not found in storage");
        _withdrawableSlot = slot;
    }

    // ------------------------------------------------------------------ actions: tasks and money

    /// @notice The publisher creates a second task (up to MAX_TASKS) from drawn parameters: quorum,
    /// seats, queue cap, bands, missed-commit limit, rewards, slashes, fees, royalty share, pool.
    function createTask(uint256 seed) external observed {
        if (relay.taskCount() >= MAX_TASKS) return;
        IDeRelay.TaskParams memory p = _defaultParams();
        p.maxValidators = uint8(2 + _draw(seed, 1, 3)); // 2..4
        p.quorum = uint8(1 + _draw(seed, 2, 2)); // 1..2
        p.maxQueue = uint32([2, 3, 8][_draw(seed, 3, 3)]);
        p.slashBand = uint16([300, 1000][_draw(seed, 4, 2)]);
        p.advanceBand = uint16([0, 100, 300][_draw(seed, 5, 3)]);
        p.maxMisses = uint8(1 + _draw(seed, 6, 3));
        p.minGain = uint16([1, 10][_draw(seed, 7, 2)]);
        p.slashTimeoutBp = uint16([0, 1000, 5000][_draw(seed, 8, 3)]);
        p.slashRejectBp = uint16([0, 2000, 10_000][_draw(seed, 9, 3)]);
        p.slashNoRevealBp = uint16([1000, 10_000][_draw(seed, 10, 2)]);
        p.slashMissBp = uint16([0, 500, 5000][_draw(seed, 11, 3)]);
        p.bandBp = uint16([0, 300][_draw(seed, 12, 2)]);
        p.validatorFee = uint96([0, 0.01 ether][_draw(seed, 13, 2)]);
        p.keeperBountyBp = uint16([0, 1000, 10_000][_draw(seed, 14, 3)]);
        p.royaltyBp = uint16([0, 5000, 10_000][_draw(seed, 15, 3)]);
        p.usageFee = uint96([0, 0.01 ether][_draw(seed, 16, 2)]);
        p.commitWindow = uint32([1, 50][_draw(seed, 17, 2)]);
        p.revealWindow = uint32([1, 50][_draw(seed, 18, 2)]);
        _create(p, [0, 0.05 ether, 10 ether][_draw(seed, 19, 3)]);
    }

    /// @notice Anyone adds to a pool (zero, one time in eight: refused).
    function fund(uint256 taskSeed, uint256 actorSeed, uint256 amount) external observed {
        uint256 t = _task(taskSeed);
        address who = _pick(_actors, actorSeed);
        amount = amount % 8 == 0 ? 0 : 1 + amount % 1 ether;
        uint256 poolBefore = relay.taskState(t).pool;
        vm.prank(who);
        relay.fund{value: amount}(t);
        ghostIn += amount;
        _rule(relay.taskState(t).pool == poolBefore + amount, "fund: pool");
    }

    /// @notice A consumer pays for the model: at the usage fee, above it, or (one time in eight)
    /// below it. The royalty share goes to contributors, the rest to the pool.
    function payForModel(uint256 taskSeed, uint256 consumerSeed, uint256 amount) external observed {
        uint256 t = _task(taskSeed);
        IDeRelay.TaskParams memory p = relay.taskParams(t);
        uint256 value = amount % 8 == 0 ? (p.usageFee == 0 ? 0 : p.usageFee - 1) : p.usageFee + amount % 1 ether;
        IDeRelay.TaskView memory before = relay.taskState(t);
        vm.prank(_pick(_consumers, consumerSeed));
        relay.payForModel{value: value}(t);
        ghostIn += value;
        ghostPayments[t] += 1;
        uint256 toContributors = before.totalShares == 0 ? 0 : value * p.royaltyBp / BP;
        IDeRelay.TaskView memory afterwards = relay.taskState(t);
        _rule(afterwards.pool == before.pool + value - toContributors, "payForModel: pool");
        _rule(
            afterwards.accPerShare
                == before.accPerShare + (toContributors == 0 ? 0 : toContributors * ACC_SCALE / before.totalShares),
            "payForModel: accPerShare"
        );
    }

    /// @notice A contributor moves its royalties into its withdrawable balance.
    function claimRoyalties(uint256 taskSeed, uint256 actorSeed) external observed {
        uint256 t = _task(taskSeed);
        address who = _firstMatch(_relayers, actorSeed, t, _hasPending);
        uint256 before = _position(t, who);
        vm.prank(who);
        relay.claimRoyalties(t);
        _rule(_position(t, who) == before, "claimRoyalties: position");
        _rule(relay.accountOf(t, who).pendingRoyalties == 0, "claimRoyalties: left pending");
    }

    /// @notice An address takes its whole withdrawable balance: half of the time the reentrant
    /// withdrawer when it has one (its re-entry must not pay), else an address with a balance
    /// that can take it, or (one time in eight) anyone, the reverting receiver included (refused:
    /// its balance stays).
    function withdraw(uint256 actorSeed) external {
        vm.warp(clock);
        address who = actorSeed % 2 == 0 && _credit(reentrant) != 0
            ? reentrant
            : _firstMatch(_actors, actorSeed >> 1, 0, _canBePaid);
        uint256 before = who.balance;
        vm.prank(who);
        relay.withdraw();
        uint256 paid = who.balance - before;
        ghostOut += paid;
        ghostWithdrawn[who] += paid;
    }

    // ------------------------------------------------------------------ actions: relay queue

    /// @notice A relayer (EOA, reverting receiver or reentrant withdrawer) stakes and joins a
    /// task with a short queue: at the minimum, twice or three times it, or below it.
    function joinRelay(uint256 taskSeed, uint256 relayerSeed, uint256 stakeSeed) external observed {
        uint256 t = _taskWhere(taskSeed, _queueShort);
        address who = _firstMatch(_relayers, relayerSeed, t, _isNotQueued);
        uint256 minStake = relay.taskParams(t).minStake;
        uint256 value = [2 * minStake, minStake, 3 * minStake, minStake - 1][stakeSeed % 4];
        uint256 before = _position(t, who);
        vm.prank(who);
        relay.joinRelay{value: value}(t);
        ghostIn += value;
        _rule(_position(t, who) == before + value, "joinRelay: position");
    }

    /// @notice A queued relayer adds stake (zero, one time in eight: refused).
    function addStake(uint256 taskSeed, uint256 relayerSeed, uint256 amount) external observed {
        uint256 t = _taskWhere(taskSeed, _hasQueue);
        address who = _firstMatch(_relayers, relayerSeed, t, _isQueued);
        amount = amount % 8 == 0 ? 0 : 1 + amount % 1 ether;
        uint256 before = _position(t, who);
        vm.prank(who);
        relay.addStake{value: amount}(t);
        ghostIn += amount;
        _rule(_position(t, who) == before + amount, "addStake: position");
    }

    /// @notice A queued relayer leaves: a waiting one, or the holder giving up an unused turn
    /// (which costs the timeout slash when others wait behind it).
    function leaveRelay(uint256 taskSeed, uint256 relayerSeed) external observed {
        uint256 t = _taskWhere(taskSeed, _hasQueue);
        address who = _firstMatch(_relayers, relayerSeed, t, _isQueued);
        IDeRelay.TaskView memory v = relay.taskState(t);
        uint256 stake = relay.accountOf(t, who).relayerStake;
        uint256 slash = who == v.holder && v.queueLength > 1 ? stake * relay.taskParams(t).slashTimeoutBp / BP : 0;
        uint256 before = _position(t, who);
        vm.prank(who);
        relay.leaveRelay(t);
        _rule(_position(t, who) == before - slash, "leaveRelay: position");
        _rule(relay.taskState(t).pool == v.pool + slash, "leaveRelay: pool");
    }

    /// @notice A keeper (or, one time in eight, the holder itself) skips an expired turn: the
    /// holder loses the timeout slash, the keeper earns its bounty share, the pool the rest.
    function skipTurn(uint256 taskSeed, uint256 callerSeed) external observed {
        uint256 t = _taskWhere(taskSeed, _turnExpired);
        address holder = relay.taskState(t).holder;
        _skip(t, callerSeed % 8 == 0 && holder != address(0) ? holder : _pick(_keepers, callerSeed));
    }

    function _skip(uint256 t, address caller) private {
        IDeRelay.TaskView memory v = relay.taskState(t);
        IDeRelay.TaskParams memory p = relay.taskParams(t);
        uint256 slash = relay.accountOf(t, v.holder).relayerStake * p.slashTimeoutBp / BP;
        uint256 bounty = caller == v.holder ? 0 : slash * p.keeperBountyBp / BP;
        uint256 holderBefore = _position(t, v.holder);
        uint256 callerBefore = _position(t, caller);
        vm.prank(caller);
        relay.skipTurn(t);
        if (caller != v.holder) {
            _rule(_position(t, caller) == callerBefore + bounty, "skipTurn: bounty");
        }
        _rule(_position(t, v.holder) == holderBefore - slash, "skipTurn: slash");
        _rule(relay.taskState(t).pool == v.pool + slash - bounty, "skipTurn: pool");
    }

    // ------------------------------------------------------------------ actions: submission

    /// @notice The holder submits a child of the head, drawn to improve on the champion (by less
    /// than, exactly and more than minGain), to copy it, to dip within the advance band, to land
    /// on its edge, to walk the head down, to creep up from the head, to be held, on the slash
    /// band's edge or below it, or to be junk; or it resubmits its child of a void review. One
    /// time in eight something is wrong: another sender, the wrong round, a stale parent, a child
    /// seen before, no samples.
    function submitRelay(uint256 taskSeed, uint256 kindSeed, uint256 wrongSeed) external observed {
        _submit(_taskWhere(taskSeed, _turnOpen), kindSeed, wrongSeed);
    }

    function _submit(uint256 t, uint256 kindSeed, uint256 wrongSeed) private {
        IDeRelay.TaskView memory v = relay.taskState(t);
        Attempt memory a = Attempt(v.holder, v.round, Fixtures.digest(v.headCid), _child(t, v, kindSeed), 100);
        if (wrongSeed % 8 == 0) {
            uint256 what = (wrongSeed >> 8) % 5;
            if (what == 0) a.sender = _pick(_relayers, wrongSeed >> 16);
            if (what == 1) a.round += 1;
            if (what == 2) a.parent = keccak256(abi.encode(a.parent));
            if (what == 3) a.child = v.championCid;
            if (what == 4) a.samples = 0;
        }
        bytes memory card = Fixtures.cid(keccak256(abi.encode("card", t, _labels)), 0x55);
        vm.prank(a.sender);
        relay.submitRelay(t, a.round, a.parent, a.child, card, bytes32(0), a.samples);
    }

    /// @dev The holder's void child half of the time it has one, else a new child of the kind the
    /// seed draws, its true quality recorded.
    function _child(uint256 t, IDeRelay.TaskView memory v, uint256 kindSeed) private returns (bytes memory child) {
        (bytes memory lastCid, IDeRelay.Record memory last) = relay.latestSubmission(t);
        if (last.status == IDeRelay.Status.Void && last.relayer == v.holder && kindSeed % 2 == 0) return lastCid;
        uint256 q = _childQuality(t, v, kindSeed % 13);
        child = Fixtures.cid(keccak256(abi.encode("child", t, ++_labels)), kindSeed % 3 == 0 ? 0x70 : 0x55);
        _quality[t][Fixtures.digest(child)] = q;
    }

    // ------------------------------------------------------------------ actions: validators

    /// @notice A validator takes a free seat: at the stake, twice it, or below it.
    function registerValidator(uint256 taskSeed, uint256 validatorSeed, uint256 stakeSeed) external observed {
        uint256 t = _taskWhere(taskSeed, _seatFree);
        address who = _firstMatch(_validators, validatorSeed, t, _isUnseated);
        uint256 stake = relay.taskParams(t).validatorStake;
        uint256 value = [stake, stake, 2 * stake, stake - 1][stakeSeed % 4];
        uint256 before = _position(t, who);
        vm.prank(who);
        relay.registerValidator{value: value}(t);
        ghostIn += value;
        _rule(_position(t, who) == before + value, "registerValidator: position");
    }

    /// @notice A validator gives up its seat (refused while its ballot is open).
    function leaveValidator(uint256 taskSeed, uint256 validatorSeed) external observed {
        uint256 t = _taskWhere(taskSeed, _hasSeats);
        address who = _firstMatch(_validators, validatorSeed, t, _isSeated);
        uint256 before = _position(t, who);
        vm.prank(who);
        relay.leaveValidator(t);
        _rule(_position(t, who) == before, "leaveValidator: position");
    }

    /// @notice A seated validator without a ballot commits the scores its behaviour gives (a
    /// squatter never does); one time in eight for the wrong round.
    function commitScore(uint256 taskSeed, uint256 validatorSeed, uint256 wrongSeed) external observed {
        uint256 t = _taskWhere(taskSeed, _commitOpen);
        address who = _firstMatch(_validators, validatorSeed, t, _canCommit);
        if (behaviour[who] != Behaviour.Squatter) _commit(t, who, wrongSeed % 8 == 0);
    }

    function _commit(uint256 t, address who, bool wrongRound) private {
        IDeRelay.TaskView memory v = relay.taskState(t);
        Vote memory vote = _ballot(t, who, v);
        vote.round = wrongRound ? v.round + 1 : v.round;
        vote.salt = keccak256(abi.encode("salt", t, vote.round, who, ++_labels));
        _votes[t][who] = vote;
        bytes32 commitment = relay.commitmentFor(t, vote.round, vote.child, vote.champion, vote.parent, vote.salt, who);
        vm.prank(who);
        relay.commitScore(t, vote.round, commitment);
    }

    /// @notice A validator that committed reveals (a silent one never does); one time in eight
    /// with the wrong salt.
    function revealScore(uint256 taskSeed, uint256 validatorSeed, uint256 wrongSeed) external observed {
        uint256 t = _taskWhere(taskSeed, _revealOpen);
        address who = _firstMatch(_validators, validatorSeed, t, _canReveal);
        if (behaviour[who] != Behaviour.Silent) _reveal(t, who, wrongSeed % 8 == 0 ? bytes32(wrongSeed) : bytes32(0));
    }

    /// @dev `who` reveals its vote, with `wrongSalt` instead of its salt when that is not zero.
    function _reveal(uint256 t, address who, bytes32 wrongSalt) private {
        Vote memory vote = _votes[t][who];
        vm.prank(who);
        relay.revealScore(t, vote.round, vote.child, vote.champion, vote.parent, wrongSalt == 0 ? vote.salt : wrongSalt);
    }

    /// @notice A keeper (or a validator, never the holder) finalizes the review. The verdict, the
    /// relayer's slash and reward, and the crowning must be what the revealed ballots decide; a
    /// void review pays nothing from the pool.
    function finalize(uint256 taskSeed, uint256 callerSeed) external observed {
        uint256 t = _taskWhere(taskSeed, _reviewDue);
        address caller = callerSeed % 4 == 0 ? _pick(_validators, callerSeed >> 8) : _pick(_keepers, callerSeed);
        _finalize(t, caller == relay.taskState(t).holder ? _keepers[0] : caller);
    }

    function _finalize(uint256 t, address caller) private {
        IDeRelay.TaskView memory v = relay.taskState(t);
        IDeRelay.TaskParams memory p = relay.taskParams(t);
        bytes32 child = _latestDigest(t);
        Review memory r = _expectedReview(t, v, p);
        uint256 stake = relay.accountOf(t, v.holder).relayerStake;
        uint256 slash = r.verdict == IDeRelay.Status.Rejected ? stake * p.slashRejectBp / BP : 0;
        uint256 reward = _expectedReward(r, p, v.pool);
        uint256 holderBefore = _position(t, v.holder);
        uint256 sharesBefore = relay.accountOf(t, v.holder).shares;

        vm.prank(caller);
        relay.finalize(t);

        ghostRewards[t] += reward;
        IDeRelay.TaskView memory w = relay.taskState(t);
        _rule(relay.recordOf(t, child).status == r.verdict, "finalize: verdict");
        _rule(_position(t, v.holder) + slash == holderBefore + reward, "finalize: relayer slash or reward");
        if (relay.accountOf(t, v.holder).shares != sharesBefore + reward) ++ghostShareBreaks;
        bool crowned = r.verdict == IDeRelay.Status.Accepted && r.delta >= int256(uint256(p.minGain));
        _rule((Fixtures.digest(w.championCid) == child) == crowned, "finalize: champion");
        _rule(r.verdict != IDeRelay.Status.Void || w.pool >= v.pool, "finalize: a void review paid from the pool");
    }

    /// @notice A whole round in one action, so that campaigns reach many verdicts. First the task
    /// is brought to an open turn: a due review finalized, an expired turn skipped, an idle queue
    /// joined. Then the holder submits a drawn child, every seated validator commits as it votes
    /// (but squatters, and one in six that sits this review out), the clock passes the commit
    /// window, all but the silent reveal, the clock passes the reveal window if anyone stayed
    /// silent, and a keeper finalizes.
    function playRound(uint256 taskSeed, uint256 kindSeed, uint256 absentSeed) external observed {
        uint256 t = _taskWhere(taskSeed, _turnOpen);
        address keeper = _pick(_keepers, kindSeed >> 8);
        IDeRelay.TaskView memory now_ = relay.taskState(t);
        if (now_.phase == IDeRelay.Phase.Review) {
            _warp(now_.revealEnd + 1);
            _finalize(t, keeper);
        } else if (now_.phase == IDeRelay.Phase.Turn && clock > now_.deadline) {
            _skip(t, keeper);
        }
        if (relay.taskState(t).phase == IDeRelay.Phase.Idle) {
            address relayer = _firstMatch(_relayers, kindSeed, t, _isNotQueued);
            uint256 stake = 2 * uint256(relay.taskParams(t).minStake);
            vm.prank(relayer);
            relay.joinRelay{value: stake}(t);
            ghostIn += stake;
        }
        _submit(t, kindSeed, 1);
        IDeRelay.TaskView memory v = relay.taskState(t);
        IDeRelay.Seat[] memory seats = relay.seatsOf(t);
        bool[] memory voted = new bool[](seats.length);
        for (uint256 i; i < seats.length; ++i) {
            address who = seats[i].validator;
            if (who == address(0) || who == v.holder || behaviour[who] == Behaviour.Squatter) continue;
            if ((absentSeed >> (8 * i)) % 6 == 0) continue;
            _commit(t, who, false);
            voted[i] = true;
        }
        _warp(v.deadline + 1);
        bool silent;
        for (uint256 i; i < seats.length; ++i) {
            if (!voted[i]) continue;
            if (behaviour[seats[i].validator] == Behaviour.Silent) silent = true;
            else _reveal(t, seats[i].validator, 0);
        }
        if (silent) _warp(v.revealEnd + 1);
        _finalize(t, keeper);
    }

    // ------------------------------------------------------------------ actions: time and world

    /// @notice Move the clock to the next window's edge of a task's current phase (turn deadline;
    /// commit end or, half of the time once the commit window closed, reveal end), one second
    /// before, on, or one second after it; one second on when no edge lies ahead.
    function warpToEdge(uint256 taskSeed, uint256 edgeSeed) external {
        uint256 t = _taskWhere(taskSeed, _notIdle);
        IDeRelay.TaskView memory v = relay.taskState(t);
        uint256 edge = v.deadline;
        if (v.phase == IDeRelay.Phase.Review && (clock >= v.deadline || edgeSeed % 2 == 1)) edge = v.revealEnd;
        uint256 target = edge + (edgeSeed >> 1) % 3;
        clock = v.phase != IDeRelay.Phase.Idle && target > clock + 1 ? target - 1 : clock + 1;
        vm.warp(clock);
    }

    /// @notice Let 1 to 40 seconds pass.
    function warpBy(uint256 seconds_) external {
        clock += 1 + seconds_ % 40;
        vm.warp(clock);
    }

    /// @notice A validator changes how it votes (honest five times in ten) and how hard its data
    /// is.
    function changeValidator(uint256 validatorSeed, uint256 behaviourSeed) external {
        address who = _pick(_validators, validatorSeed);
        uint256 b = behaviourSeed % 10;
        behaviour[who] = b < 5 ? Behaviour.Honest : Behaviour(b - 4);
        bias[who] = [int256(-300), 0, 200][(behaviourSeed >> 8) % 3];
    }

    /// @notice Every validator's data gets harder or easier at once.
    function shiftData(uint256 seed) external {
        int256 shift = [int256(-200), 200][seed % 2];
        for (uint256 i; i < _validators.length; ++i) {
            int256 b = bias[_validators[i]] + shift;
            bias[_validators[i]] = b < BIAS_MIN ? BIAS_MIN : b > BIAS_MAX ? BIAS_MAX : b;
        }
    }

    // ------------------------------------------------------------------ the probe

    /// @notice No reachable state rejects every honest child: from the current state of task `t`,
    /// honest newcomers take every free seat and each holder submits an honest child (the
    /// champion's quality + minGain); rounds are void while squatters and silent validators hold
    /// seats, which they lose after maxMisses reviews without a reveal, whatever their stake. The
    /// child must be crowned unless liars outvote the honest (the documented bound). Meant for an
    /// invariant, whose state changes forge throws away.
    function probeHonestChild(uint256 t) external returns (ProbeOutcome) {
        vm.warp(clock);
        IDeRelay.TaskParams memory p = relay.taskParams(t);
        uint256 rounds = uint256(p.maxMisses) + 10;
        for (uint256 i; i < rounds; ++i) {
            _reachTurn(t, p);
            for (uint160 k; k < 4; ++k) {
                _seatNewcomer(t, p, address((0x600 + k) << 8));
            }
            IDeRelay.TaskView memory v = relay.taskState(t);
            bytes memory child = _probeChild(t, v.holder, i);
            uint256 champion = _quality[t][Fixtures.digest(v.championCid)];
            _quality[t][Fixtures.digest(child)] = champion == 0 ? QMIN : champion + p.minGain;
            vm.prank(v.holder);
            relay.submitRelay(t, v.round, Fixtures.digest(v.headCid), child, child, bytes32(0), 1);
            (uint256 revealers, uint256 liars) = _playReview(t);
            IDeRelay.Status verdict = relay.recordOf(t, Fixtures.digest(child)).status;
            if (verdict == IDeRelay.Status.Void) continue;
            if (liars > (revealers - 1) / 2) return ProbeOutcome.OutvotedByLiars;
            require(verdict == IDeRelay.Status.Accepted, "probe: an honest child was not accepted");
            require(
                Fixtures.digest(relay.taskState(t).championCid) == Fixtures.digest(child),
                "probe: an honest child was not crowned"
            );
            return ProbeOutcome.Crowned;
        }
        revert("probe: no honest child crowned");
    }

    /// @dev The probe's child in its `i`th round: the holder's void child when it has one (the
    /// contract takes no other), else a new one.
    function _probeChild(uint256 t, address holder, uint256 i) private view returns (bytes memory) {
        (bytes memory lastCid, IDeRelay.Record memory last) = relay.latestSubmission(t);
        if (last.status == IDeRelay.Status.Void && last.relayer == holder) return lastCid;
        return Fixtures.cid(keccak256(abi.encode("probe", t, i)), 0x55);
    }

    /// @dev Finish a review, fill an idle queue (with a relayer that holds no seat when every
    /// queued one does), skip an expired turn, until a holder may submit now.
    function _reachTurn(uint256 t, IDeRelay.TaskParams memory p) private {
        address newcomer = address(uint160(0x6ff) << 8);
        for (;;) {
            IDeRelay.TaskView memory v = relay.taskState(t);
            if (v.phase == IDeRelay.Phase.Review) {
                _warp(v.revealEnd + 1);
                vm.prank(_keepers[0]);
                relay.finalize(t);
            } else if (v.phase == IDeRelay.Phase.Turn && clock > v.deadline) {
                vm.prank(_keepers[0]);
                relay.skipTurn(t);
            } else if (v.phase == IDeRelay.Phase.Idle || _everyQueuedIsSeated(t, v)) {
                vm.deal(newcomer, ACTOR_FUNDS);
                vm.prank(newcomer);
                relay.joinRelay{value: p.minStake}(t);
                if (v.phase != IDeRelay.Phase.Idle) return;
            } else {
                return;
            }
        }
    }

    function _everyQueuedIsSeated(uint256 t, IDeRelay.TaskView memory v) private view returns (bool) {
        (address[] memory members,,) = relay.queuePage(t, address(0), v.queueLength);
        for (uint256 i; i < members.length; ++i) {
            if (relay.accountOf(t, members[i]).seat < 0) return false;
        }
        return true;
    }

    function _seatNewcomer(uint256 t, IDeRelay.TaskParams memory p, address who) private {
        IDeRelay.Seat[] memory seats = relay.seatsOf(t);
        for (uint256 i; i < seats.length; ++i) {
            if (seats[i].validator == address(0)) {
                if (relay.accountOf(t, who).seat >= 0) return;
                vm.deal(who, ACTOR_FUNDS);
                vm.prank(who);
                relay.registerValidator{value: p.validatorStake}(t);
                return;
            }
        }
    }

    /// @dev Every seated validator but the holder and squatters commits as it votes, every one but
    /// the silent reveals, then the review is finalized. Returns the reveals and the liars among
    /// them.
    function _playReview(uint256 t) private returns (uint256 revealers, uint256 liars) {
        IDeRelay.TaskView memory v = relay.taskState(t);
        IDeRelay.Seat[] memory seats = relay.seatsOf(t);
        bool silent;
        for (uint256 i; i < seats.length; ++i) {
            address who = seats[i].validator;
            if (who == address(0) || who == v.holder || behaviour[who] == Behaviour.Squatter) continue;
            Vote memory vote = _ballot(t, who, v);
            (vote.round, vote.salt) = (v.round, bytes32(i));
            _votes[t][who] = vote;
            bytes32 commitment = relay.commitmentFor(t, v.round, vote.child, vote.champion, vote.parent, vote.salt, who);
            vm.prank(who);
            relay.commitScore(t, v.round, commitment);
        }
        _warp(v.deadline + 1);
        for (uint256 i; i < seats.length; ++i) {
            address who = seats[i].validator;
            if (who == address(0) || who == v.holder || behaviour[who] == Behaviour.Squatter) continue;
            if (behaviour[who] == Behaviour.Silent) {
                silent = true;
                continue;
            }
            Vote memory vote = _votes[t][who];
            vm.prank(who);
            relay.revealScore(t, v.round, vote.child, vote.champion, vote.parent, vote.salt);
            ++revealers;
            if (behaviour[who] != Behaviour.Honest) ++liars;
        }
        if (silent) _warp(v.revealEnd + 1);
        vm.prank(_keepers[0]);
        relay.finalize(t);
    }

    // ------------------------------------------------------------------ views for the invariants

    /// @notice Everyone who can hold anything in the contract.
    function actors() external view returns (address[] memory) {
        return _actors;
    }

    // ------------------------------------------------------------------ internals

    /// @dev Warp to the handler's clock; after the action, record every address's new credits
    /// (a withdrawable balance that shrank outside withdraw is a lost credit) and check that each
    /// task's shares grew by exactly the rewards the rules gave crowned children.
    modifier observed() {
        vm.warp(clock);
        uint256 n = _actors.length;
        uint256[] memory credits = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            credits[i] = _credit(_actors[i]);
        }
        uint256 tasks = relay.taskCount();
        int256[MAX_TASKS + 1] memory unearned; // totalShares - rewards: must never move
        for (uint256 t = 1; t <= tasks; ++t) {
            unearned[t] = _unearnedShares(t);
        }
        _;
        for (uint256 i; i < n; ++i) {
            uint256 credit = _credit(_actors[i]);
            if (credit > credits[i]) ghostCredited[_actors[i]] += credit - credits[i];
            if (credit < credits[i]) ++ghostLostCredits;
        }
        for (uint256 t = 1; t <= tasks; ++t) {
            if (_unearnedShares(t) != unearned[t]) ++ghostShareBreaks;
        }
    }

    function _unearnedShares(uint256 t) private view returns (int256) {
        return int256(relay.taskState(t).totalShares) - int256(ghostRewards[t]);
    }

    function _credit(address who) private view returns (uint256) {
        return uint256(vm.load(address(relay), keccak256(abi.encode(who, _withdrawableSlot))));
    }

    function _create(IDeRelay.TaskParams memory p, uint256 funding) private returns (uint256 t) {
        p.specCid = Fixtures.cid(keccak256(abi.encode("spec", relay.taskCount() + 1)), 0x55);
        p.genesisCid = Fixtures.cid(keccak256(abi.encode("genesis", relay.taskCount() + 1)), 0x70);
        vm.prank(publisher);
        t = relay.createTask{value: funding}(p);
        ghostIn += funding;
        _quality[t][Fixtures.digest(p.genesisCid)] = GENESIS_QUALITY;
    }

    function _defaultParams() private pure returns (IDeRelay.TaskParams memory p) {
        p = Fixtures.taskParams();
        p.genesisScore = uint16(GENESIS_QUALITY);
    }

    /// @dev The verdict, medians and reveals of the review under way, from the ballots on chain.
    function _expectedReview(uint256 t, IDeRelay.TaskView memory v, IDeRelay.TaskParams memory p)
        private
        view
        returns (Review memory r)
    {
        r.verdict = IDeRelay.Status.Void;
        IDeRelay.Seat[] memory seats = relay.seatsOf(t);
        int256[] memory child = new int256[](seats.length);
        int256[] memory delta = new int256[](seats.length);
        int256[] memory progress = new int256[](seats.length);
        for (uint256 i; i < seats.length; ++i) {
            IDeRelay.Seat memory s = seats[i];
            if (s.validator == address(0) || s.validator == v.holder) continue;
            if (s.round != v.round || s.ballot != IDeRelay.Ballot.Revealed) continue;
            child[r.reveals] = int256(uint256(s.childScore));
            delta[r.reveals] = int256(uint256(s.childScore)) - int256(uint256(s.championScore));
            progress[r.reveals] = int256(uint256(s.childScore)) - int256(uint256(s.parentScore));
            r.reveals += 1;
        }
        if (r.reveals < p.quorum) return r; // Void
        int256 childScore = _lowerMedian(child, r.reveals);
        r.delta = _lowerMedian(delta, r.reveals);
        r.progress = _lowerMedian(progress, r.reveals);
        if (childScore == 0 || r.delta < -int256(uint256(p.slashBand))) r.verdict = IDeRelay.Status.Rejected;
        else if (r.delta < -int256(uint256(p.advanceBand))) r.verdict = IDeRelay.Status.Held;
        else r.verdict = IDeRelay.Status.Accepted;
    }

    /// @dev min(pool, (gain >= minGain ? baseReward : 0) + rewardPerPoint * gain) for a crowned
    /// child with progress > 0, gain = min(delta, progress); nothing otherwise.
    function _expectedReward(Review memory r, IDeRelay.TaskParams memory p, uint256 pool)
        private
        pure
        returns (uint256)
    {
        int256 minGain = int256(uint256(p.minGain));
        if (r.verdict != IDeRelay.Status.Accepted || r.delta < minGain || r.progress <= 0) return 0;
        uint256 gain = uint256(r.progress < r.delta ? r.progress : r.delta);
        uint256 reward = (gain >= p.minGain ? uint256(p.baseReward) : 0) + uint256(p.rewardPerPoint) * gain;
        return reward > pool ? pool : reward;
    }

    function _lowerMedian(int256[] memory values, uint256 n) private pure returns (int256) {
        int256[] memory sorted = new int256[](n);
        for (uint256 i; i < n; ++i) {
            sorted[i] = values[i];
            for (uint256 j = i; j > 0 && sorted[j - 1] > sorted[j]; --j) {
                (sorted[j - 1], sorted[j]) = (sorted[j], sorted[j - 1]);
            }
        }
        return sorted[(n - 1) / 2];
    }

    /// @dev The true quality of a new child of `kind` (see `submitRelay`), in [QMIN, QMAX]; 0 for junk.
    function _childQuality(uint256 t, IDeRelay.TaskView memory v, uint256 kind) private view returns (uint256) {
        IDeRelay.TaskParams memory p = relay.taskParams(t);
        if (kind == 11) return 0;
        int256 champion = int256(_qualityOf(t, Fixtures.digest(v.championCid)));
        int256 headQ = int256(_qualityOf(t, Fixtures.digest(v.headCid)));
        int256 minGain = int256(uint256(p.minGain));
        int256 advance = int256(uint256(p.advanceBand));
        int256[13] memory targets = [
            champion + 250,
            champion + minGain,
            champion + minGain - 1,
            champion,
            champion - (advance / 2 > 1 ? advance / 2 : int256(1)),
            champion - advance,
            headQ - advance,
            headQ + (minGain / 2 > 1 ? minGain / 2 : int256(1)),
            champion - advance - 1,
            champion - int256(uint256(p.slashBand)),
            champion - int256(uint256(p.slashBand)) - 1,
            int256(0),
            champion + 500
        ];
        int256 q = targets[kind];
        return uint256(q < int256(QMIN) ? int256(QMIN) : q > int256(QMAX) ? int256(QMAX) : q);
    }

    function _qualityOf(uint256 t, bytes32 digest) private view returns (uint256) {
        uint256 q = _quality[t][digest];
        return q == 0 ? QMIN : q;
    }

    /// @dev What `who` commits for the review under way (round and salt left to the caller): its
    /// measure of the child, the champion and the child's parent (the head), as its behaviour
    /// reports them.
    function _ballot(uint256 t, address who, IDeRelay.TaskView memory v) private view returns (Vote memory vote) {
        bytes32 child = _latestDigest(t);
        uint256 c = _measured(_quality[t][child], who);
        uint256 h = _measured(_quality[t][Fixtures.digest(v.championCid)], who);
        uint256 q = _measured(_quality[t][Fixtures.digest(v.headCid)], who);
        Behaviour b = behaviour[who];
        if (b == Behaviour.Booster) {
            uint256 boosted = h + 500 > BP ? BP : h + 500;
            (c, q) = (boosted, boosted - 500);
        } else if (b == Behaviour.Sinker) {
            c = c > 2000 ? c - 2000 : 0;
            q = c + 2000;
        } else if (b == Behaviour.Lazy) {
            (c, h, q) = (GUESS, GUESS, GUESS);
        }
        (vote.child, vote.champion, vote.parent) = (uint16(c), uint16(h), uint16(q));
    }

    function _measured(uint256 q, address who) private view returns (uint256) {
        if (q == 0) return 0;
        return uint256(int256(q) + bias[who]);
    }

    /// @dev Withdrawable balance plus, in task `t`, relayer and validator stakes and pending
    /// royalties: what an address can get out, which only moves by the rules.
    function _position(uint256 t, address who) private view returns (uint256) {
        IDeRelay.AccountView memory a = relay.accountOf(t, who);
        return a.withdrawable + a.relayerStake + a.validatorStake + a.pendingRoyalties;
    }

    function _rule(bool holds, string memory what) private {
        if (holds) return;
        ++ghostRuleBreaks;
        lastRuleBreak = what;
    }

    function _warp(uint256 to) private {
        if (to > clock) clock = to;
        vm.warp(clock);
    }

    function _task(uint256 seed) private view returns (uint256) {
        return 1 + seed % relay.taskCount();
    }

    /// @dev Seven times in eight the first task from the seed's place in which the action can
    /// do its work now, else (or when none can) the task at the seed's place.
    function _taskWhere(uint256 seed, function(uint256) view returns (bool) fits) private view returns (uint256) {
        uint256 n = relay.taskCount();
        if (uint256(keccak256(abi.encode(seed, "task"))) % 8 != 0) {
            for (uint256 i; i < n; ++i) {
                uint256 t = 1 + (seed + i) % n;
                if (fits(t)) return t;
            }
        }
        return 1 + seed % n;
    }

    function _turnOpen(uint256 t) private view returns (bool) {
        IDeRelay.TaskView memory v = relay.taskState(t);
        return v.phase == IDeRelay.Phase.Turn && clock <= v.deadline;
    }

    function _turnExpired(uint256 t) private view returns (bool) {
        IDeRelay.TaskView memory v = relay.taskState(t);
        return v.phase == IDeRelay.Phase.Turn && clock > v.deadline;
    }

    function _commitOpen(uint256 t) private view returns (bool) {
        IDeRelay.TaskView memory v = relay.taskState(t);
        return v.phase == IDeRelay.Phase.Review && clock <= v.deadline;
    }

    function _revealOpen(uint256 t) private view returns (bool) {
        IDeRelay.TaskView memory v = relay.taskState(t);
        return v.phase == IDeRelay.Phase.Review && clock > v.deadline && clock <= v.revealEnd;
    }

    function _reviewDue(uint256 t) private view returns (bool) {
        IDeRelay.TaskView memory v = relay.taskState(t);
        return v.phase == IDeRelay.Phase.Review && clock > v.deadline;
    }

    function _hasQueue(uint256 t) private view returns (bool) {
        return relay.taskState(t).queueLength != 0;
    }

    function _queueShort(uint256 t) private view returns (bool) {
        return relay.taskState(t).queueLength < 3;
    }

    function _seatFree(uint256 t) private view returns (bool) {
        return relay.taskState(t).validatorCount < relay.taskParams(t).maxValidators;
    }

    function _hasSeats(uint256 t) private view returns (bool) {
        return relay.taskState(t).validatorCount != 0;
    }

    function _notIdle(uint256 t) private view returns (bool) {
        return relay.taskState(t).phase != IDeRelay.Phase.Idle;
    }

    function _draw(uint256 seed, uint256 salt, uint256 n) private pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, salt))) % n;
    }

    function _pick(address[] storage list, uint256 seed) private view returns (address) {
        return list[seed % list.length];
    }

    /// @dev Seven times in eight the first of `list` from the seed's place on that `fits`, else
    /// (or when none fits) the one at the seed's place: mostly valid, sometimes not.
    function _firstMatch(
        address[] storage list,
        uint256 seed,
        uint256 t,
        function(uint256, address) view returns (bool) fits
    ) private view returns (address) {
        uint256 n = list.length;
        if (uint256(keccak256(abi.encode(seed))) % 8 != 0) {
            for (uint256 i; i < n; ++i) {
                address a = list[(seed + i) % n];
                if (fits(t, a)) return a;
            }
        }
        return list[seed % n];
    }

    function _isQueued(uint256 t, address a) private view returns (bool) {
        return relay.accountOf(t, a).queued;
    }

    function _isNotQueued(uint256 t, address a) private view returns (bool) {
        return !relay.accountOf(t, a).queued;
    }

    function _isSeated(uint256 t, address a) private view returns (bool) {
        return relay.accountOf(t, a).seat >= 0;
    }

    function _isUnseated(uint256 t, address a) private view returns (bool) {
        return relay.accountOf(t, a).seat < 0;
    }

    function _hasPending(uint256 t, address a) private view returns (bool) {
        return relay.accountOf(t, a).pendingRoyalties > 0;
    }

    function _canBePaid(uint256, address a) private view returns (bool) {
        return a != revertingReceiver && _credit(a) != 0;
    }

    function _canCommit(uint256 t, address a) private view returns (bool) {
        int16 seat = relay.accountOf(t, a).seat;
        if (seat < 0) return false;
        IDeRelay.Seat memory s = relay.seatsOf(t)[uint256(int256(seat))];
        return behaviour[a] != Behaviour.Squatter
            && !(s.round == relay.taskState(t).round && s.ballot != IDeRelay.Ballot.None);
    }

    function _canReveal(uint256 t, address a) private view returns (bool) {
        int16 seat = relay.accountOf(t, a).seat;
        if (seat < 0) return false;
        IDeRelay.Seat memory s = relay.seatsOf(t)[uint256(int256(seat))];
        return behaviour[a] != Behaviour.Silent && s.ballot == IDeRelay.Ballot.Committed
            && s.round == relay.taskState(t).round;
    }

    /// @dev The digest of the task's latest submission: the child under review in Review.
    function _latestDigest(uint256 t) private view returns (bytes32) {
        (bytes memory cid,) = relay.latestSubmission(t);
        return Fixtures.digest(cid);
    }
}
