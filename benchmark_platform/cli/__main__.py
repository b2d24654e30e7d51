"""`python -m benchmark_platform.cli`: the same as the `benchmark-platform` command."""

from benchmark_platform.cli import main

main()
