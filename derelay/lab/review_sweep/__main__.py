"""`python -m derelay.lab.review_sweep`: the review sweep (see the package)."""

from derelay.lab.review_sweep import main

main()
