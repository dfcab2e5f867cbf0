"""`python -m fan_edge.cli` (torchrun starts training this way)."""

from fan_edge.cli import main

main()
