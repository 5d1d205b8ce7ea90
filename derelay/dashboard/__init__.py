"""The read-only dashboard: a small HTTP server over the chain and its static page."""
