"""Sweeps: named variants × seeds, each trained and evaluated once into its own run folder.

A run folder is `OUT/{key}_seed{seed}`. Its `eval.json` marks it finished: a finished run is
read back, never trained again, so an interrupted sweep continues where it stopped, and a
second process on the same OUT waits for a run the first is training (`claimed`) instead of
training it twice. `OUT/settings.json` records the settings the sweep was made with, and a
later sweep with other settings is refused (`check_settings`): one OUT holds one
configuration.
"""

import fcntl
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fan_edge.config import OPTION_SECTION, RunConfig
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import write_json

Reports = dict[str, list[dict]]  # per variant key, one eval.json per seed, in seed order


@dataclass(frozen=True)
class Variant:
    """One trained model, or one evaluation of other variants' checkpoints.

    `options`: flat RunConfig option names (mode=, frames=, rho=, ...) over the sweep's base
    config. `members`: evaluation only, the variants whose checkpoints (same seed) it
    evaluates together (each count answered by the nearest model, or all of them averaged
    with `ensemble`).
    """

    label: str
    options: dict = field(default_factory=dict)
    members: tuple[str, ...] = ()
    ensemble: bool = False

    def __post_init__(self):
        unknown = sorted(set(self.options) - set(OPTION_SECTION))
        if unknown:
            raise FanEdgeError(
                f"variant {self.label!r}: unknown run options {', '.join(unknown)} "
                "(see fan_edge.config.RunConfig)"
            )
        if self.members and self.options:
            raise FanEdgeError(
                f"variant {self.label!r} evaluates {', '.join(self.members)}: it trains "
                "nothing, so it takes no run options"
            )
        if self.ensemble and not self.members:
            raise FanEdgeError(f"variant {self.label!r}: an ensemble needs members")


@dataclass(frozen=True)
class Sweep:
    """What every run of a sweep shares (picklable: worker processes receive it).

    `base`: the run options every variant starts from (its `seed` is replaced per run).
    `mode_defaults`: options a mode's runs take unless their variant sets them (FAN's
    distillation schedule means nothing to a standard model, and its stored config should
    not pretend otherwise). `frames`: the counts every run is evaluated at.
    """

    variants: dict[str, Variant]
    out: Path
    base: RunConfig
    frames: tuple[int, ...]
    mode_defaults: dict[str, dict] = field(default_factory=dict)
    validate: bool = False  # validate after every epoch (learning curves)
    quiet: bool = False

    def folder(self, key: str, seed: int) -> Path:
        return self.out / f"{key}_seed{seed}"

    def config(self, key: str, seed: int) -> RunConfig:
        """The run's full configuration: base, then its mode's defaults, then the variant."""
        options = self.variants[key].options
        mode = options.get("mode", self.base.train.mode)
        return self.base.replace(seed=seed, **self.mode_defaults.get(mode, {}) | options)

    def closure(self, keys) -> list[str]:
        """`keys` with the members they evaluate, in the sweep's order (members first)."""
        keys = set(keys)
        unknown = sorted(keys - set(self.variants))
        if unknown:
            raise FanEdgeError(f"unknown variants {', '.join(unknown)}")
        needed = keys | {m for k in keys for m in self.variants[k].members}
        return [k for k in self.variants if k in needed]


@contextmanager
def claimed(folder: Path) -> Iterator[None]:
    """Hold a run folder while training it: another process (a second invocation on the same
    OUT) waits for it, then finds the run finished instead of training it again."""
    folder.mkdir(parents=True, exist_ok=True)
    # a file of its own, not the folder: the trainer locks the folder itself, without waiting
    with open(folder / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is training {folder}", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def read_report(path: Path):
    """A JSON file a sweep wrote; a damaged one is a one-line error naming the fix."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        reason = str(e).replace("\n", " ")
        raise FanEdgeError(
            f"{path} is unreadable ({reason}): delete it and run again to redo what it records"
        ) from None


def finished(folder: Path, make: Callable[[], dict]) -> dict:
    """`folder`/eval.json, made by `make()` unless this or another process already made it;
    read back from the file either way (string keys, as a resumed sweep sees it)."""
    path = folder / "eval.json"
    if not path.exists():
        with claimed(folder):
            if not path.exists():  # another process may have made it while this one waited
                write_json(path, make())
    return read_report(path)


def train_and_eval(sweep: Sweep, key: str, seed: int) -> dict:
    """The run's report: trained (or resumed) and evaluated unless already finished."""
    from fan_edge.train.api import evaluate_checkpoint, train_run

    folder, variant = sweep.folder(key, seed), sweep.variants[key]

    def make() -> dict:
        if variant.members:  # an evaluation of other runs' checkpoints
            ckpts = [sweep.folder(m, seed) / "checkpoint.pt" for m in variant.members]
            return evaluate_checkpoint(ckpts, list(sweep.frames), ensemble=variant.ensemble)
        result = train_run(
            sweep.config(key, seed),
            folder,
            resume="auto",
            validate=sweep.validate,
            quiet=sweep.quiet,
        )
        refuse_stopped(result, folder)
        return evaluate_checkpoint(folder / "checkpoint.pt", list(sweep.frames))

    return finished(folder, make)


def refuse_stopped(result: dict, folder: Path) -> None:
    """A training stopped by a signal (train_run's `stopped`) is not finished: evaluating it
    now would record a part-trained run as done; the next run resumes it instead."""
    stopped = result.get("stopped")
    if stopped:
        raise FanEdgeError(
            f"{folder}: training stopped ({stopped['signal'] or 'step limit'}) in epoch "
            f"{stopped['epoch']}; run the same command again to continue it"
        )


def run_seed(sweep: Sweep, seed: int, keys: list[str]) -> list[dict]:
    """One seed's runs in order (those not finished are trained): their reports."""
    t0, reports = time.time(), []
    for i, key in enumerate(keys, 1):
        new = not (sweep.folder(key, seed) / "eval.json").exists()
        tag = f"[seed {seed}: {i}/{len(keys)}] {sweep.variants[key].label}"
        if new:
            print(f"{tag} ({(time.time() - t0) / 60:.0f} min so far)", flush=True)
        report = train_and_eval(sweep, key, seed)
        if new:
            shown = [n for n in report.get("trained_frames", []) if str(n) in report["results"]]
            top = ", ".join(f"{n}F {report['results'][str(n)]['top1']:.1f}" for n in shown)
            print(f"{tag}: top-1 {top}", flush=True)
        reports.append(report)
    return reports


def _seed_worker(job: tuple) -> tuple[int, str | None]:
    """`run_seed` in a worker process with its share of the cores. An error comes back as a
    message: a SystemExit would kill the pool's worker silently, and the parent would wait
    for it forever."""
    import torch

    sweep, seed, keys, threads = job
    torch.set_num_threads(threads)
    try:
        run_seed(sweep, seed, keys)
    except (FanEdgeError, SystemExit) as e:
        return seed, str(e).removeprefix("error: ")
    return seed, None


def run_seeds_in_parallel(sweep: Sweep, seeds: list[int], keys: list[str], jobs: int) -> None:
    """One process per seed, `jobs` at a time, the cores split between them; the first
    failure stops them all (a FanEdgeError with its message)."""
    jobs = min(jobs, len(seeds))
    threads = max(1, len(os.sched_getaffinity(0)) // jobs)
    spawn = multiprocessing.get_context("spawn")  # forking a process that holds torch can hang
    with spawn.Pool(jobs) as pool:  # leaving the block terminates the workers
        work = [(sweep, s, keys, threads) for s in seeds]
        for seed, error in pool.imap_unordered(_seed_worker, work):
            if error:
                raise FanEdgeError(error)
            print(f"seed {seed}: every run finished", flush=True)


def run_sweep(sweep: Sweep, seeds: list[int], keys: list[str], jobs: int = 1) -> Reports:
    """Every run of `keys` (and the members they evaluate) for every seed; per key, the
    reports in `seeds` order. With `jobs` > 1 the seeds train side by side first."""
    keys = sweep.closure(keys)
    if jobs > 1:
        run_seeds_in_parallel(sweep, seeds, keys, jobs)
    reports: Reports = {k: [] for k in keys}
    for seed in seeds:  # after the pool every run is finished: this only reads reports
        for key, report in zip(keys, run_seed(sweep, seed, keys), strict=True):
            reports[key].append(report)
    return reports


def training_minutes(folders: list[Path]) -> float:
    """Wall minutes of the training epochs recorded in the folders' metrics.json."""
    paths = [f / "metrics.json" for f in folders if (f / "metrics.json").exists()]
    return sum(e["seconds"] for p in paths for e in read_report(p)["epochs"]) / 60


def check_settings(out: Path, settings: dict) -> None:
    """An OUT holds one configuration: record `settings` (JSON values) there the first
    time, and refuse other ones later, since resuming with them would mix the two. Keys
    added since the file was written are not compared."""
    path = Path(out) / "settings.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, settings)
        return
    theirs = read_report(path)
    diff = ", ".join(
        f"{k} {theirs[k]} -> {v}" for k, v in settings.items() if k in theirs and theirs[k] != v
    )
    if diff:
        raise FanEdgeError(
            f"{out} holds runs made with other settings ({diff}): pass another --out"
        )
