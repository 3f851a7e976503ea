"""``python -m bench.efficacy``: see bench/efficacy/run.py."""

from bench.efficacy.run import main

main()
