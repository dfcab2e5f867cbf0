"""Experiment sweeps: named variants of a training run × seeds, each trained once into its own
resumable run folder and evaluated at every frame count, with the claims checked on the
results and a report written (`benchmarks/reproduce.py` is the paper's sweep)."""

from fan_edge.experiments.claims import Claim, diff_check, paper_claims, seed_diffs, stats
from fan_edge.experiments.sweep import (
    Reports,
    Sweep,
    Variant,
    check_settings,
    claimed,
    finished,
    read_report,
    run_sweep,
    train_and_eval,
)

__all__ = [
    "Claim",
    "Reports",
    "Sweep",
    "Variant",
    "check_settings",
    "claimed",
    "diff_check",
    "finished",
    "paper_claims",
    "read_report",
    "run_sweep",
    "seed_diffs",
    "stats",
    "train_and_eval",
]
