// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDeRelay} from "derelay/IDeRelay.sol";
import {RelayHandler} from "./RelayHandler.sol";
import {InvariantTargets, Vm, VM_ADDRESS} from "./utils/Vm.sol";

/// @title The invariants of DeRelay, under every role's actions (see RelayHandler)
/// @notice forge runs each `invariant_*` function as a campaign of its own: random sequences of
/// the handler's actions, the invariant checked after every call. The set-up creates the first
/// task (the contract tests' defaults, a 10 ether pool); the handler creates a second one from
/// drawn parameters. Campaign sizes: `[profile.ci.invariant]` in foundry.toml, scaled per
/// invariant by the `forge-config` lines (cheap checks run more calls, the probe fewer).
contract DeRelayInvariantTest is InvariantTargets {
    Vm private constant vm = Vm(VM_ADDRESS);
    uint256 private constant ACC_SCALE = 1e18;

    IDeRelay internal relay;
    RelayHandler internal handler;
    /// @dev Storage slot of `DeRelay._relayers`, found by `_locateRelayersSlot`.
    uint256 internal relayersSlot;

    function setUp() public {
        relay = IDeRelay(vm.deployCode("DeRelay.sol:DeRelay"));
        handler = new RelayHandler(relay);
        handler.createFirstTask();
        relayersSlot = _locateRelayersSlot();
        bytes4[] memory selectors = new bytes4[](20);
        selectors[0] = RelayHandler.createTask.selector;
        selectors[1] = RelayHandler.fund.selector;
        selectors[2] = RelayHandler.payForModel.selector;
        selectors[3] = RelayHandler.claimRoyalties.selector;
        selectors[4] = RelayHandler.withdraw.selector;
        selectors[5] = RelayHandler.joinRelay.selector;
        selectors[6] = RelayHandler.addStake.selector;
        selectors[7] = RelayHandler.leaveRelay.selector;
        selectors[8] = RelayHandler.skipTurn.selector;
        selectors[9] = RelayHandler.submitRelay.selector;
        selectors[10] = RelayHandler.registerValidator.selector;
        selectors[11] = RelayHandler.leaveValidator.selector;
        selectors[12] = RelayHandler.commitScore.selector;
        selectors[13] = RelayHandler.revealScore.selector;
        selectors[14] = RelayHandler.finalize.selector;
        selectors[15] = RelayHandler.warpToEdge.selector;
        selectors[16] = RelayHandler.warpBy.selector;
        selectors[17] = RelayHandler.changeValidator.selector;
        selectors[18] = RelayHandler.shiftData.selector;
        selectors[19] = RelayHandler.playRound.selector;
        _target(address(handler), selectors);
    }

    /// @notice The balance equation: the contract holds exactly what was paid in less what it paid
    /// out, and that covers every pool, stake, withdrawable balance and unsettled royalty, with
    /// at most the rounding dust of the royalty accumulator left over: per task, one wei per
    /// contributor and payment plus the floor of accPerShare's division (totalShares / 1e18 + 1
    /// wei per payment).
    /// forge-config: ci.invariant.runs = 48
    function invariant_balanceEquation() public view {
        uint256 balance = address(relay).balance;
        require(balance == handler.ghostIn() - handler.ghostOut(), "balance != paid in - paid out");
        address[] memory actors = handler.actors();
        uint256 owed;
        uint256 dustBound;
        for (uint256 i; i < actors.length; ++i) {
            owed += relay.withdrawable(actors[i]);
        }
        for (uint256 t = 1; t <= relay.taskCount(); ++t) {
            IDeRelay.TaskView memory v = relay.taskState(t);
            owed += v.pool;
            uint256 contributors;
            for (uint256 i; i < actors.length; ++i) {
                IDeRelay.AccountView memory a = relay.accountOf(t, actors[i]);
                owed += a.relayerStake + a.validatorStake + a.pendingRoyalties;
                if (a.shares != 0) ++contributors;
            }
            dustBound += (contributors + 1 + v.totalShares / ACC_SCALE) * handler.ghostPayments(t);
        }
        require(balance >= owed, "the balance does not cover pools + stakes + withdrawable + royalties");
        require(balance - owed <= dustBound, "more dust than royalty rounding can leave");
    }

    /// @notice One holder per task, in Turn and Review: the front of the queue, queued itself;
    /// Idle exactly when the queue is empty and nobody holds the turn.
    /// forge-config: ci.invariant.runs = 64
    function invariant_oneHolderPerTask() public view {
        for (uint256 t = 1; t <= relay.taskCount(); ++t) {
            IDeRelay.TaskView memory v = relay.taskState(t);
            if (v.phase == IDeRelay.Phase.Idle) {
                require(v.holder == address(0) && v.queueLength == 0, "idle with a holder or a queue");
                continue;
            }
            require(v.holder != address(0) && v.queueLength != 0, "a turn without a holder");
            require(relay.accountOf(t, v.holder).queued, "the holder is not queued");
            (address[] memory front,,) = relay.queuePage(t, address(0), 1);
            require(front.length == 1 && front[0] == v.holder, "the holder is not the queue's front");
        }
    }

    /// @notice The queue's links: walking `next` from the holder visits queueLength distinct
    /// members and returns to the holder; each member's `prev` is the one before it and its
    /// stake is the one the view reports; every actor that says it is queued is on the walk.
    /// forge-config: ci.invariant.runs = 48
    function invariant_queueLinksAndLength() public view {
        address[] memory actors = handler.actors();
        for (uint256 t = 1; t <= relay.taskCount(); ++t) {
            IDeRelay.TaskView memory v = relay.taskState(t);
            (address[] memory members, uint256[] memory stakes, address after_) =
                relay.queuePage(t, address(0), type(uint256).max);
            require(after_ == address(0), "the walk does not end");
            require(members.length == v.queueLength, "queueLength is not the walk's length");
            uint256 n = members.length;
            for (uint256 k; k < n; ++k) {
                (address next, uint256 stake, address prev) = _links(t, members[k], relayersSlot);
                require(next == members[(k + 1) % n], "next link");
                require(prev == members[(k + n - 1) % n], "prev link");
                require(stake == stakes[k], "stake in the link slot");
                for (uint256 j; j < k; ++j) {
                    require(members[j] != members[k], "a member twice in the queue");
                }
            }
            uint256 queued;
            for (uint256 i; i < actors.length; ++i) {
                if (relay.accountOf(t, actors[i]).queued) ++queued;
            }
            require(queued == n, "queued actors and queue members differ");
        }
    }

    /// @notice Every credit is withdrawn at most once: for every address, what withdraw paid it
    /// plus what it may still withdraw is exactly what it was ever credited, and no credit
    /// vanished other than by withdraw.
    /// forge-config: ci.invariant.runs = 96
    function invariant_everyCreditWithdrawnAtMostOnce() public view {
        address[] memory actors = handler.actors();
        for (uint256 i; i < actors.length; ++i) {
            address a = actors[i];
            require(
                handler.ghostWithdrawn(a) + relay.withdrawable(a) == handler.ghostCredited(a),
                "withdrawn + withdrawable != credited"
            );
        }
        require(handler.ghostLostCredits() == 0, "a credit vanished outside withdraw");
    }

    /// @notice Shares only grow, and only with a crowned child's reward: per task, the shares of
    /// all contributors add up to totalShares, which is the sum of the rewards the rules gave
    /// crowned children; no address's shares ever shrank.
    /// forge-config: ci.invariant.runs = 64
    function invariant_sharesOnlyGrowWithCrownedChildren() public view {
        require(handler.ghostShareBreaks() == 0, "shares shrank or grew outside a crowned child's reward");
        address[] memory actors = handler.actors();
        for (uint256 t = 1; t <= relay.taskCount(); ++t) {
            uint256 total = relay.taskState(t).totalShares;
            uint256 sum;
            for (uint256 i; i < actors.length; ++i) {
                sum += relay.accountOf(t, actors[i]).shares;
            }
            require(sum == total, "shares do not add up to totalShares");
            require(total == handler.ghostRewards(t), "totalShares is not the crowned children's rewards");
        }
    }

    /// @notice Each call moves money as the rules say: finalize's verdict is what the revealed
    /// ballots decide (void under quorum; rejected, held or accepted by the bands), a rejected
    /// relayer loses slashRejectBp of its stake, a crowned one gains exactly its reward, a void
    /// review pays nothing from the pool, a skip costs slashTimeoutBp and pays the keeper its
    /// bounty, stakes and fees land where they should.
    /// forge-config: ci.invariant.runs = 96
    function invariant_moneyMovesByTheRules() public view {
        require(handler.ghostRuleBreaks() == 0, string.concat("rule broken: ", handler.lastRuleBreak()));
    }

    /// @notice No reachable state rejects every honest child: from here, honest newcomers in the
    /// free seats and honest children get one crowned within maxMisses + 10 rounds, unless liars
    /// outvote the honest validators (a colluding majority decides any review: the documented
    /// bound). The probe plays on chain, in one task per check, in turn (forge discards what an
    /// invariant changes).
    /// forge-config: ci.invariant.runs = 24
    function invariant_anHonestChildIsAlwaysCrowned() public {
        uint256 t = 1 + handler.clock() % relay.taskCount();
        require(handler.probeHonestChild(t) != RelayHandler.ProbeOutcome.None, "probe: no outcome");
    }

    /// @dev `_relayers[t][who]`: next and stake (one word), prev (the next word).
    function _links(uint256 t, address who, uint256 slot)
        private
        view
        returns (address next, uint256 stake, address prev)
    {
        bytes32 base = keccak256(abi.encode(who, keccak256(abi.encode(t, slot))));
        uint256 word = uint256(vm.load(address(relay), base));
        next = address(uint160(word));
        stake = word >> 160;
        prev = address(uint160(uint256(vm.load(address(relay), bytes32(uint256(base) + 1)))));
    }

    /// @dev Find `_relayers` in storage: with three relayers queued in task 1 (then rolled back,
    /// with this contract's own storage), the slot whose entries hold their next and prev links.
    function _locateRelayersSlot() private returns (uint256 slot) {
        uint256 snapshot = vm.snapshotState();
        address[3] memory queue = [address(0xA11CE), address(0xB0B), address(0xCA11)];
        for (uint256 i; i < 3; ++i) {
            vm.deal(queue[i], 1 ether);
            vm.prank(queue[i]);
            relay.joinRelay{value: 1 ether}(1);
        }
        for (; slot < 64; ++slot) {
            bool found = true;
            for (uint256 i; i < 3 && found; ++i) {
                (address next,, address prev) = _links(1, queue[i], slot);
                found = next == queue[(i + 1) % 3] && prev == queue[(i + 2) % 3];
            }
            if (found) break;
        }
        require(slot < 64, "DeRelay._relayers not found in storage: did the Relayer struct's layout change?");
        vm.revertToState(snapshot);
    }
}
