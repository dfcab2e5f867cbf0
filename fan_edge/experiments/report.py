"""A sweep's report: Markdown sections (accuracy tables, claims, learning curves,
normalization shift) and plots, mean and spread over seeds."""

from collections.abc import Callable
from pathlib import Path

from fan_edge.config import KD_SWITCH
from fan_edge.experiments import curves
from fan_edge.experiments.claims import Claim, mean_at, stats, top1
from fan_edge.experiments.sweep import Reports
from fan_edge.fileio import atomic_path


def cell(values: list[float]) -> str:
    """'81.2 ± 0.4' over seeds ('81.2' for one seed)."""
    m, s = stats(values)
    return f"{m:.1f} ± {s:.1f}" if len(values) > 1 else f"{m:.1f}"


def present_tables(rep: Reports, tables: dict[str, list[str]]) -> dict[str, list[str]]:
    """`tables` restricted to the runs in `rep` (all of them after a full sweep), leaving out
    a table that would only repeat runs shown above it."""
    found, shown = {}, set()
    for title, keys in tables.items():
        keys = [k for k in keys if k in rep]
        if set(keys) - shown:
            found[title] = keys
            shown.update(keys)
    return found


def accuracy_table(
    rep: Reports, title: str, keys: list[str], labels: dict[str, str], frames
) -> list[str]:
    """Markdown: one row per run, top-1 at each evaluated count."""
    lines = [
        f"## {title}",
        "",
        "| model | " + " | ".join(f"{n}F" for n in frames) + " |",
        "|---|" + "---|" * len(frames),
    ]
    for key in keys:
        lines.append(f"| {labels[key]} | {' | '.join(cell(top1(rep, key, n)) for n in frames)} |")
    return [*lines, ""]


def claims_table(title: str, claims: list[Claim], head: str = "claim") -> list[str]:
    """Markdown: each claim, whether it holds (a failure in bold), what was measured."""
    if not claims:
        return []
    lines = [f"## {title}", "", f"| {head} | holds | measured |", "|---|---|---|"]
    lines += [f"| {c.text} | {'yes' if c.holds else '**no**'} | {c.measured} |" for c in claims]
    return [*lines, ""]


def plot_tables(
    rep: Reports,
    panels: dict[str, list[str]],
    labels: dict[str, str],
    frames,
    path: Path,
    highlight: str = "fan",
) -> None:
    """One panel per table: top-1 per evaluated count, mean with the spread as error bars.
    A run keeps its colour in every panel; `highlight` is drawn in black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        return
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.3 * len(panels) + 0.1, 4.5), sharey=True, squeeze=False
    )
    axes = axes[0]
    others = list(dict.fromkeys(k for keys in panels.values() for k in keys if k != highlight))
    palette = [*plt.cm.tab10.colors, "#1b9e77", "#e7298a", "#7570b3"]  # + Dark2 minus orange
    color = dict(zip(others, palette, strict=False)) | {highlight: "black"}
    for ax, (title, keys) in zip(axes, panels.items(), strict=True):
        for key in keys:
            ax.errorbar(
                frames,
                [mean_at(rep, key, n) for n in frames],
                yerr=[stats(top1(rep, key, n))[1] for n in frames],
                fmt="o-" if key.startswith(highlight) else "s--",
                ms=4,
                capsize=2,
                color=color[key],
                label=labels[key],
            )
        ax.set(title=title, xlabel="frames at evaluation", xticks=list(frames))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("top-1 (%)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def curves_section(
    rep: Reports, out: Path, seeds: list[int], labels: dict[str, str], title: str, results: Path
) -> list[str]:
    """Learning curves of the validated runs under `out` (with curves.png in `results`),
    their plateau exits and training cost, and the from-scratch targets."""
    cur, num_classes = curves.load(out, list(labels), seeds)
    if not cur:
        return []
    curves.plot(cur, results / "curves.png", labels, title)
    lines = [
        "## Learning curves from scratch",
        "",
        "Validation top-1 (%) after each epoch, mean over seeds, at each trained count: "
        "FAN's sub-network against the single-count model trained at that count (ST's "
        "model there). A model leaves the plateau at the first epoch whose top-1 is a "
        f"quarter of the way from chance ({100 / num_classes:.1f}%) to 100%.",
        "",
        *curves.rows(cur, num_classes, labels),
        "",
        "![learning curves](curves.png)",
        "",
    ]
    return lines + claims_table("From-scratch targets", curves.checks(cur, rep), head="target")


def bn_shift_section(shifts: dict, seed: int) -> list[str]:
    """Markdown: each normalization-shift comparison, mean and by quarter of the depth."""
    if not shifts:
        return []
    lines = [
        f"## Normalization shift (seed {seed})",
        "",
        "Symmetric KL between per-channel Gaussians of normalization statistics, mean "
        "over layers, and by quarter of the depth (input → output); see "
        "`fan-edge analyze bn-shift`.",
        "",
        "| comparison | mean | by depth quarter |",
        "|---|---|---|",
    ]
    for name, r in shifts.items():
        for c in r["comparisons"]:
            s = c["summary"]
            q = " / ".join(f"{v:.3f}" for v in s["sym_kl_by_depth_quarter"])
            lines.append(f"| {name}: {c['a']} vs {c['b']} | {s['mean_sym_kl']:.3f} | {q} |")
    return [*lines, ""]


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def distillation_schedule(kd_gate: float, kd_warmup: float, kd_after: float = 0.0) -> str:
    """FAN's students' schedule in words (TrainConfig's kd_gate, kd_warmup_epochs, kd_after)."""
    when = []
    if kd_after:
        when.append(
            f"after {kd_after:g} of the run, over the next {KD_SWITCH:g} of it (then the "
            "paper's loss)"
        )
    if kd_gate:
        when.append(
            f"once the teacher's running training top-1 is {kd_gate:g} of the way from "
            "chance to 100%"
        )
    if kd_warmup:
        when.append(f"over the first {kd_warmup:g} epochs")
    if not when:
        return "distilling from the first step (the paper's recipe)"
    return "students moving from cross-entropy to distillation " + " and ".join(when)


def bn_shifts(
    folder: Callable[[str], Path], comparisons: dict[str, tuple[list[str], bool]], keys
) -> dict:
    """`fan-edge analyze bn-shift` for each comparison (name -> (runs, live)) whose runs are
    all among `keys`; `folder(key)` is the run folder of one seed."""
    from fan_edge.analysis.bn_shift import bn_shift_report

    return {
        name: bn_shift_report([folder(k) / "checkpoint.pt" for k in runs], live=live)
        for name, (runs, live) in comparisons.items()
        if set(runs) <= set(keys)
    }


def sections(
    rep: Reports,
    tables: dict[str, list[str]],
    labels: dict[str, str],
    frames,
    claims: list[Claim],
    results: Path,
) -> list[str]:
    """The accuracy tables of the runs in `rep`, the claims, and the plot of the tables
    (written to `results`/reproduce.png)."""
    panels = present_tables(rep, tables)
    lines = []
    for title, keys in panels.items():
        lines += accuracy_table(rep, title, keys, labels, frames)
    lines += claims_table("The paper's claims, checked", claims)
    if panels:
        plot_tables(rep, panels, labels, frames, results / "reproduce.png")
        lines += ["![accuracy per frame count](reproduce.png)", ""]
    return lines
