"""Claims checked on a sweep's reports: each a `Claim` (what is claimed, whether the
measurements support it, what was measured), judged on the mean over seeds with the seeds
shown where the claim pairs two runs of one seed.

`paper_claims` is the paper's list, over the variant keys of `benchmarks/reproduce.py`
(standard-16, st, fan, the ablations ...): it checks only the claims whose runs are present.
"""

import statistics
from dataclasses import dataclass

from fan_edge.experiments.sweep import Reports
from fan_edge.frames import DEFAULT_FRAMES

TRAINED = DEFAULT_FRAMES  # the frame set of the paper's FAN and ST


@dataclass(frozen=True)
class Claim:
    text: str
    holds: bool
    measured: str


def stats(values: list[float]) -> tuple[float, float]:
    """Mean and population spread (0 for one value)."""
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def top1(rep: Reports, key: str, n: int) -> list[float]:
    """Top-1 of `key` at `n` frames, per seed."""
    return [r["results"][str(n)]["top1"] for r in rep[key]]


def mean_at(rep: Reports, key: str, n: int) -> float:
    return stats(top1(rep, key, n))[0]


def seed_diffs(rep: Reports, key: str, base: str, counts) -> list[float]:
    """Per seed, `key` minus `base` averaged over `counts` (both trained with that seed)."""
    return [
        statistics.fmean(
            a["results"][str(n)]["top1"] - b["results"][str(n)]["top1"] for n in counts
        )
        for a, b in zip(rep[key], rep[base], strict=True)
    ]


def per_seed(diffs: list[float], agree: int, headline: float | None = None) -> str:
    """'+0.2 (per seed +1.0, -0.5: 1 of 2 agree)': the headline (default: the mean), each
    seed, how many seeds agree with the claim."""
    seeds = ", ".join(f"{x:+.1f}" for x in diffs)
    head = statistics.fmean(diffs) if headline is None else headline
    return f"{head:+.1f} (per seed {seeds}: {agree} of {len(diffs)} agree)"


def diff_check(text: str, diffs: list[float], want_negative: bool) -> Claim:
    """Holds when the mean difference has the claimed sign; the seeds show how firmly."""
    d = statistics.fmean(diffs)
    agree = sum((x < 0) if want_negative else (x >= 0) for x in diffs)
    return Claim(text, d < 0 if want_negative else d >= 0, per_seed(diffs, agree))


def paper_claims(rep: Reports, labels: dict[str, str]) -> list[Claim]:
    """The paper's qualitative claims that the runs in `rep` can test (`labels`: the
    variants' names in the claims)."""

    def m(key, n):
        return mean_at(rep, key, n)

    def have(*keys):
        return all(k in rep for k in keys)

    checks = []
    if have("st", "standard-16"):
        td = m("st", 4) - m("standard-16", 4)
        checks.append(
            Claim(
                "Temporal Deviation: the standard model loses at 4F against ST",
                td > 3,
                f"ST 4F − standard 4F = {td:+.1f}",
            )
        )
    for k in ("mixed-0.5", "mixed-0.75", "proportional-0.5", "proportional-0.75"):
        if have(k, "standard-16"):
            low, high = m(k, 4) - m("standard-16", 4), m(k, 16) - m("standard-16", 16)
            checks.append(
                Claim(
                    f"{labels[k]} trades 16F accuracy for 4F accuracy",
                    low > 0 and high < 0,
                    f"vs standard: 4F {low:+.1f}, 16F {high:+.1f}",
                )
            )
    if have("fan", "st"):
        for n in TRAINED:
            checks.append(diff_check(f"FAN ≥ ST at {n}F", seed_diffs(rep, "fan", "st", [n]), False))
    for k in ("fan-no-sn", "fan-no-wa", "fan-ce"):
        if have(k, "fan"):
            checks.append(
                diff_check(
                    f"{labels[k]} below full FAN on average (4/8/16F)",
                    seed_diffs(rep, k, "fan", TRAINED),
                    True,
                )
            )
    if have("fan2", "fan"):
        checks.append(
            diff_check(
                "FAN(2) below FAN(3) between its two counts (6-12F)",
                seed_diffs(rep, "fan2", "fan", [6, 8, 10, 12]),
                True,
            )
        )
    return checks
