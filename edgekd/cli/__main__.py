"""`python -m edgekd.cli`: the same as `edgekd`."""

from edgekd.cli import main

main()
