"""`python -m bench`: every benchmark in one run (see bench/run.py)."""

from bench.run import main

main()
