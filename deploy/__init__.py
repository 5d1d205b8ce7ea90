"""DeRelayL administration: compiling, deploying, task administration and payout queries."""
