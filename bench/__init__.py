"""Benchmarks: speed, gas and scale figures beside their targets. Not part of the installed package."""
