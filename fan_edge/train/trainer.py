"""The training loop: one FAN checkpoint (or a standard model), DDP-ready.

Under `torchrun` each process trains on its shard (DistributedDataParallel, gloo on CPU,
nccl on GPU); rank 0 validates, writes checkpoints and metrics. Without it, one process.
"""

import contextlib
import dataclasses
import itertools
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from fan_edge.config import KD_SWITCH, DataSpec, ModelConfig, TrainConfig
from fan_edge.data.datasets import ClipDataset
from fan_edge.errors import FanEdgeError
from fan_edge.evaluate import evaluate
from fan_edge.fileio import check_output_file, locked, made_folder, write_json
from fan_edge.models import FrameAdaptiveNet, build_model, resolve
from fan_edge.train.checkpoint import init_from, load_checkpoint, save_checkpoint
from fan_edge.train.losses import DistillationGate
from fan_edge.train.modes import MODES, StepContext
from fan_edge.train.plateau import plateau_warning

log = logging.getLogger(__name__)  # messages; the epoch lines are the progress display's

# Training options a resumed run must share with the run it continues (epochs may grow).
RECIPE = (
    "mode",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "kd_lambda",
    "kd_warmup_epochs",
    "kd_gate",
    "kd_after",
    "distill",
    "rho",
    "seed",
    "init",
)
# no students: nothing to distil
FAN_ONLY = ("kd_lambda", "kd_warmup_epochs", "kd_gate", "kd_after", "distill")


class TrainStep(nn.Module):
    """The mode's forward(s) and loss for one batch of clips (one per sampled frame count).

    Wrapping this (not the model) in DDP keeps one DDP forward per backward.
    """

    def __init__(self, model: FrameAdaptiveNet, step, ctx: StepContext):
        super().__init__()
        self.model, self.step, self.ctx = model, step, ctx

    def forward(self, clips: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return self.step(self.model, clips, target, self.ctx)


def check_mode(model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """Refuse a mode / frame set / model combination that cannot train as asked."""
    mode = MODES.get(train_cfg.mode)
    if mode is None:
        raise FanEdgeError(f"unknown mode {train_cfg.mode!r}: choose one of {', '.join(MODES)}")
    if mode.num_frames is not None and len(model_cfg.frames) != mode.num_frames:
        example = " ".join(map(str, mode.default_frames()))
        raise FanEdgeError(
            f"mode {train_cfg.mode!r} trains on {mode.num_frames} frame count(s), got "
            f"{list(model_cfg.frames)}: pass --frames {example}"
        )
    if mode.plain and (model_cfg.specialize_norm or model_cfg.weight_alteration):
        raise FanEdgeError(
            f"mode {train_cfg.mode!r} trains one plain network: build it "
            "without Specialized Normalization and Weight Alteration"
        )


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> DistEnv:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if world > 1:
        if cuda:
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        return DistEnv(dist.get_rank(), world, device)
    return DistEnv(0, 1, device)


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int):
    warm = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    total = cfg.epochs * steps_per_epoch

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return f


# What `train` does with a run folder that already holds a checkpoint.
RESUME = {
    False: "refuse (a new run)",
    True: "continue it (it must exist)",
    "auto": "continue it if it exists, else start",
}
RUN_FILES = ("checkpoint.pt", "metrics.json")  # what a run owns: --overwrite removes these


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    train_source,
    val_source,
    out_dir: str | Path,
    *,
    data: DataSpec | None = None,
    resume: bool | str = False,
    overwrite: bool = False,
    max_steps: int | None = None,
    quiet: bool = False,
) -> dict:
    """Train and write `out_dir/checkpoint.pt` and `out_dir/metrics.json`; return metrics.

    The run folder is locked while training (a second process on it is refused). An existing
    run is continued with `resume` (exactly: data order and every random state are restored,
    also after a stop in the middle of an epoch) or replaced with `overwrite`. `data`, what
    the sources are, is recorded in the checkpoint (for `eval`, and to refuse resuming with
    other data).
    """
    check_mode(model_cfg, train_cfg)
    if resume not in RESUME:
        raise ValueError(f"resume must be one of {list(RESUME)}")
    if resume and overwrite:
        raise FanEdgeError("--resume continues the run and --overwrite replaces it: choose one")
    if max_steps is not None and max_steps < 1:
        raise FanEdgeError(f"--max-steps must be >= 1, got {max_steps}")
    out_dir = Path(out_dir)
    env = setup_distributed()
    with (
        made_folder(out_dir, "run folder") if env.main else contextlib.nullcontext(),
        locked(out_dir, "training") if env.main else contextlib.nullcontext(),
    ):
        ckpt, train_cfg = _claim_run(
            out_dir, model_cfg, train_cfg, data, resume=resume, overwrite=overwrite and env.main
        )
        return _train(
            model_cfg,
            train_cfg,
            train_source,
            val_source,
            out_dir,
            env,
            ckpt,
            data=data,
            max_steps=max_steps,
            quiet=quiet,
        )


def _claim_run(
    out_dir: Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: DataSpec | None,
    *,
    resume: bool | str,
    overwrite: bool,
) -> tuple[dict | None, TrainConfig]:
    """The checkpoint to continue (None: a new run), after checking it may be continued, and
    the config the run trains with, resolved as it is stored (`TrainConfig.resolved`): a
    later default cannot change a run, and a resumed run keeps the `kd_after` it has
    unless one is given."""
    ckpt_path = out_dir / "checkpoint.pt"
    for name in RUN_FILES:  # before the first epoch, not after it
        check_output_file(out_dir / name, "run file")
    if (
        overwrite
        and train_cfg.init
        and Path(train_cfg.init).resolve() in {(out_dir / n).resolve() for n in RUN_FILES}
    ):
        raise FanEdgeError(
            f"--init {train_cfg.init} is the run --overwrite would replace: "
            "copy it elsewhere first, or choose another --out"
        )
    if not ckpt_path.exists():
        if resume is True:
            raise FanEdgeError(
                f"nothing to resume in {out_dir} (no checkpoint.pt): drop "
                "--resume to start a new run there"
            )
        return None, train_cfg.resolved()
    if overwrite:
        for name in RUN_FILES:
            (out_dir / name).unlink(missing_ok=True)
        return None, train_cfg.resolved()
    if not resume:
        raise FanEdgeError(
            f"{out_dir} already holds a run: pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    ckpt = load_checkpoint(ckpt_path)
    # Compared as configs, not as stored dicts: a field added to a config since the run was
    # written takes its default on both sides, so a new option never blocks a resume.
    if resolve(ModelConfig.from_dict(ckpt["model_config"])) != resolve(model_cfg):
        raise FanEdgeError(
            f"{ckpt_path} was trained with another model config; "
            "resume with the same options or choose a new --out"
        )
    try:
        old = TrainConfig.from_dict(ckpt["train_config"]).resolved()
    except FanEdgeError as e:
        raise FanEdgeError(f"{ckpt_path}: {e}; it cannot be resumed: choose a new --out") from None
    if train_cfg.kd_after is None:  # not given: the run keeps its own
        train_cfg = dataclasses.replace(train_cfg, kd_after=old.kd_after)
    train_cfg = train_cfg.resolved()
    recipe = RECIPE if train_cfg.mode == "fan" else [k for k in RECIPE if k not in FAN_ONLY]
    changed = [
        f"{k} ({getattr(old, k)} there, {getattr(train_cfg, k)} now)"
        for k in recipe
        if getattr(old, k) != getattr(train_cfg, k)
    ]
    old_data = DataSpec.of(ckpt)
    if old_data is not None and data is not None:
        changed += [f"data ({k})" for k in old_data.differences(data)]
    if changed:
        raise FanEdgeError(
            f"{ckpt_path} was trained with other {', '.join(changed)}; "
            "resume with the same options or choose a new --out"
        )
    return ckpt, train_cfg


def _train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    train_source,
    val_source,
    out_dir: Path,
    env: DistEnv,
    ckpt: dict | None,
    *,
    data: DataSpec | None,
    max_steps: int | None,
    quiet: bool,
) -> dict:
    ckpt_path = out_dir / "checkpoint.pt"
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg)
    if ckpt is None and train_cfg.init:
        report = init_from(model, train_cfg.init)
        if env.main and not quiet:
            log.info(
                f"initialised {report['loaded']} tensors from {train_cfg.init}; "
                f"{len(report['skipped'])} keep their fresh init"
            )
    model = model.to(env.device)
    gen_step = torch.Generator().manual_seed(train_cfg.seed + 7919 * env.rank)
    ctx = StepContext(
        lam=train_cfg.kd_lambda, rho=train_cfg.rho, distill=train_cfg.distill, generator=gen_step
    )
    step_module = TrainStep(model, MODES[train_cfg.mode].step, ctx)
    gate = DistillationGate(model_cfg.num_classes, level=train_cfg.kd_gate)
    # Training cost as the paper counts it: frames through the network, whatever the mode.
    frames_seen = [0]

    def count_frames(module, args):
        if module.training:
            frames_seen[0] += args[0].shape[0] * args[0].shape[1]  # B * T

    model.register_forward_pre_hook(count_frames)
    if env.world > 1:
        step_module = DistributedDataParallel(step_module)

    ds = ClipDataset(
        train_source,
        model_cfg.frames,
        model_cfg.input_size,
        model_cfg.mean,
        model_cfg.std,
        train=True,
        seed=train_cfg.seed,
        resize=model_cfg.resize,
        interpolation=model_cfg.interpolation,
    )
    # The order of an epoch is a function of (seed, epoch) alone, so a resumed run reads the
    # same batches; `skip` drops those an interrupted epoch already trained on.
    sampler = ResumableSampler(ds, num_replicas=env.world, rank=env.rank, seed=train_cfg.seed)
    gen = torch.Generator().manual_seed(train_cfg.seed)  # worker seeds
    loader = DataLoader(
        ds,
        batch_size=train_cfg.batch_size,
        sampler=sampler,
        num_workers=train_cfg.workers,
        drop_last=len(ds) > train_cfg.batch_size * env.world,
        generator=gen,
    )
    steps_per_epoch = len(loader)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [
            {"params": decay, "weight_decay": train_cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=train_cfg.lr,
        momentum=train_cfg.momentum,
        nesterov=True,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(train_cfg, steps_per_epoch))

    history, start_epoch, partial = [], 0, None
    if ckpt is not None:
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch, history = ckpt["epoch"], list(ckpt["metrics"])
        if "step_rng" in ckpt:
            gen_step.set_state(ckpt["step_rng"])
        if "distill_gate" in ckpt:
            gate.load_state_dict(ckpt["distill_gate"])
        if "rng" in ckpt:  # older checkpoints resume, but not exactly
            _set_rng_state(ckpt["rng"], gen)
        partial = ckpt.get("partial_epoch")
        if env.main and not quiet:
            where = (
                f"step {partial['step']} of epoch {start_epoch + 1}"
                if partial
                else f"epoch {start_epoch}"
            )
            log.info(f"resuming {ckpt_path} after {where}")

    def save(epoch: int, partial_epoch: dict | None = None) -> None:
        save_checkpoint(
            ckpt_path,
            model_config=model_cfg.to_dict(),
            train_config=train_cfg.to_dict(),
            data=data.to_dict() if data else None,
            classes=classes,
            state_dict=model.state_dict(),
            optimizer=opt.state_dict(),
            scheduler=sched.state_dict(),
            step_rng=gen_step.get_state(),
            distill_gate=gate.state_dict(),
            rng=_rng_state(epoch_start_gen),
            epoch=epoch,
            partial_epoch=partial_epoch,
            metrics=history,
        )

    classes = list(train_source.classes)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        disable=quiet or not env.main,
        transient=True,
    )
    steps, stopped = 0, None
    with progress, stop_requests() as stop:
        for epoch in range(start_epoch, train_cfg.epochs):
            ds.set_epoch(epoch)
            sampler.set_epoch(epoch)
            done = partial["step"] if partial else 0
            sampler.skip = done * train_cfg.batch_size
            t0, loss_sum, seen, frames_seen[0] = time.time(), 0.0, 0, 0
            if partial:  # the interrupted epoch's sums so far
                loss_sum, seen, frames_seen[0] = (
                    partial["loss_sum"],
                    partial["seen"],
                    partial["frames_seen"],
                )
                t0 -= partial["seconds"]
            partial = None
            epoch_start_gen = gen.get_state()  # iterating the loader draws from it
            model.train()
            task = progress.add_task(
                f"epoch {epoch + 1}/{train_cfg.epochs}",
                total=steps_per_epoch,
                completed=done,
                info="",
            )
            for i, (clips, y) in enumerate(loader, start=done):
                progress_epochs = epoch + i / steps_per_epoch
                ctx.ramp = min(_timed_ramp(train_cfg, progress_epochs), gate.ramp)
                clips = [c.to(env.device, non_blocking=True) for c in clips]
                y = y.to(env.device)
                loss = step_module(clips, y)
                if ctx.teacher_correct is not None:
                    gate.update(*_all_ranks(env, ctx.teacher_correct, len(y)))
                if not torch.isfinite(loss):
                    raise FanEdgeError(
                        f"loss became {loss.item()} at epoch {epoch + 1}; lower --lr"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += loss.item() * len(y)
                seen += len(y)
                progress.update(task, advance=1, info=f"loss {loss_sum / seen:.3f}")
                steps += 1
                halt = stop.signal or (max_steps is not None and steps >= max_steps)
                if halt and i + 1 < steps_per_epoch:
                    if env.main:  # stopped inside the epoch: save where, to resume there
                        save(
                            epoch,
                            {
                                "step": i + 1,
                                "loss_sum": loss_sum,
                                "seen": seen,
                                "frames_seen": frames_seen[0],
                                "seconds": time.time() - t0,
                            },
                        )
                    stopped = {
                        "epoch": epoch + 1,
                        "step": i + 1,
                        "of": steps_per_epoch,
                        "signal": stop.signal,
                    }
                    break
            progress.remove_task(task)
            if stopped:
                break
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(1, seen),
                "lr": sched.get_last_lr()[0],
                "seconds": time.time() - t0,
                "frames_seen": frames_seen[0] * env.world,
            }
            if train_cfg.mode == "fan" and train_cfg.distill:
                record["distill_ramp"] = ctx.ramp
            if env.main:
                if val_source is not None:
                    val = evaluate(
                        model,
                        val_source,
                        model.frames,
                        model_cfg,
                        device=env.device,
                        progress=progress,
                    )
                    record["val"] = {str(n): r for n, r in val.items()}
                history.append(record)
                epoch_start_gen = gen.get_state()  # the next epoch starts from here
                save(epoch + 1)
                write_json(
                    out_dir / "metrics.json",
                    {
                        "model_config": model_cfg.to_dict(),
                        "train_config": train_cfg.to_dict(),
                        "data": data.to_dict() if data else None,
                        "epochs": history,
                    },
                )
                if not quiet:
                    progress.console.print(_epoch_line(record))
            if env.world > 1:
                dist.barrier()
            if stop.signal and epoch + 1 < train_cfg.epochs:
                stopped = {
                    "epoch": epoch + 1,
                    "step": steps_per_epoch,
                    "of": steps_per_epoch,
                    "signal": stop.signal,
                }
            if stopped or (max_steps is not None and steps >= max_steps):
                break
    if env.world > 1:
        dist.destroy_process_group()
    result = {"epochs": history, "checkpoint": str(ckpt_path), "stopped": stopped}
    warning = plateau_warning(history, model_cfg.num_classes) if env.main else None
    if warning:
        result["warning"] = warning
        if not quiet:
            log.warning(f"warning: {warning}")
    return result


class StopRequests:
    signal: str | None = None  # the name of the signal that asked training to stop


@contextlib.contextmanager
def stop_requests():
    """Ctrl-C or SIGTERM stops training after the current step, which is saved (and
    resumes exactly); a second one stops at once. Only the main thread can take signals."""
    stop = StopRequests()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.signal:
            raise KeyboardInterrupt
        stop.signal = signal.Signals(signum).name
        log.warning(f"{stop.signal}: stopping after this step (again to stop at once)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class ResumableSampler(DistributedSampler):
    """The epoch's order from (seed, epoch) alone (also for one process), minus its first
    `skip` samples: those a run stopped inside the epoch already trained on."""

    skip = 0

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return super().__len__() - self.skip


def _rng_state(loader_state: torch.Tensor) -> dict:
    """Every random state a step draws from (dropout: the global one), and the loader's
    generator as it was when this epoch's iteration began."""
    state = {"torch": torch.get_rng_state(), "loader": loader_state}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, loader_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    loader_gen.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _timed_ramp(cfg: TrainConfig, epochs_done: float) -> float:
    """The students' ramp from cross-entropy to distillation that the clock allows: from
    `distill_after` of the run over the next `KD_SWITCH` of it, and over the first
    `kd_warmup_epochs` epochs. 1: the paper's loss (the gate may still hold it back)."""
    ramp = 1.0
    if cfg.distill_after > 0:
        ramp = min(1.0, max(0.0, epochs_done / cfg.epochs - cfg.distill_after) / KD_SWITCH)
    if cfg.kd_warmup_epochs > 0:
        ramp = min(ramp, epochs_done / cfg.kd_warmup_epochs)
    return ramp


def _all_ranks(env: DistEnv, correct: torch.Tensor, total: int) -> tuple[float, float]:
    """(correct, total) summed over every process, so each moves its gate alike."""
    if env.world == 1:
        return float(correct), float(total)
    both = torch.stack([correct.float(), torch.tensor(float(total), device=correct.device)])
    dist.all_reduce(both)
    return float(both[0]), float(both[1])


def _epoch_line(r: dict) -> str:
    val = "  ".join(f"{n}F {v['top1']:.1f}%" for n, v in r.get("val", {}).items())
    val = f"  val top-1 {val}" if val else ""
    ramp = f"  distillation {r['distill_ramp']:.0%}" if "distill_ramp" in r else ""
    return f"epoch {r['epoch']}: loss {r['train_loss']:.3f}{val}{ramp}  ({r['seconds']:.0f}s)"
