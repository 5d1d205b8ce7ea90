"""`python -m derelay.lab.review_sweep`: the review sweep's command (`command.main`)."""

from derelay.lab.review_sweep.command import main

if __name__ == "__main__":
    main()
