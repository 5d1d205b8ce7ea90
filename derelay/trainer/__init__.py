"""DeRelayL off-chain worker: content store, models, training, chain client and worker loop."""

__version__ = "0.1.0"
