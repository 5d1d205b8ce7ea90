"""The review-defaults experiment (review v2, issue 12): which `slashBand`, `advanceBand` and
`minGain` keep honest turns unslashed and advancing under label skew while adaptive adversaries
(`derelay.lab.adversaries`) gain almost nothing.

Two layers:
- `mirror_relay` replays a relay off-chain: the data, turn order and training seeds of
  `derelay.lab.simulate`, the adversaries' very children, every validator scoring the child and the
  champion on its own held-out shard, and the contract's verdict and reward arithmetic
  (`derelay.lab.metrics.review`, `relay_reward`): void/rejected/held/accepted, head and champion apart,
  slashes and forced leaves. Children and scores are cached, so parameter sets that lead a relay
  through the same turns train each turn once; the whole grid costs a few parameter sets' time.
- `confirm_on_chain` runs the recommended parameters through the real contract
  (`derelay.lab.simulate.Simulation`) and compares every turn with the mirror's; where they agree, the
  mirror's figures are the chain's.

`--start` asks what honest relays would pay for a defence outside the review: honest relayers that
discard an accepted dip (start from the champion, or from the mean of its and the head's weights,
`STARTS`) undo an in-band poisoner's turn, and the report's targets table shows, in its last
column, what that costs the all-honest relay in accuracy.

`python -m derelay.lab.review_sweep --out out/review` runs the experiment and writes review.md.
"""

from derelay.lab.review_sweep.cells import CellResult, run_cell
from derelay.lab.review_sweep.chain import chain_relay, confirm_on_chain, mismatches
from derelay.lab.review_sweep.command import main
from derelay.lab.review_sweep.lab import STARTS, Lab, Scores
from derelay.lab.review_sweep.mirror import mirror_relay, scenario_config, worst_class_drop
from derelay.lab.review_sweep.targets import TARGETS, aggregate, judge, rank, sweep

__all__ = [
    "Lab",
    "STARTS",
    "Scores",
    "mirror_relay",
    "scenario_config",
    "worst_class_drop",
    "run_cell",
    "sweep",
    "aggregate",
    "judge",
    "rank",
    "chain_relay",
    "mismatches",
    "confirm_on_chain",
    "TARGETS",
    "CellResult",
    "main",
]
