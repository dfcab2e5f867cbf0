"""benchmarks/reproduce.py (the paper's sweep over fan_edge.experiments): its claim checks,
its settings guard, and a tiny resumable run."""

import json
import sys
import threading
from pathlib import Path

import pytest

from fan_edge.config import KD_AFTER
from fan_edge.errors import FanEdgeError
from fan_edge.experiments import claimed, curves, read_report, train_and_eval
from fan_edge.experiments.report import present_tables

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import reproduce  # noqa: E402


def report(top1_at: dict[int, float]) -> dict:
    """An eval.json as `evaluate_checkpoint` writes it (string keys, as read back)."""
    return {"results": {str(n): {"top1": v} for n, v in top1_at.items()}}


def flat(value: float) -> dict:
    return report(dict.fromkeys(reproduce.EVAL_FRAMES, value))


def reports(per_seed: dict[str, list[float]]) -> dict[str, list[dict]]:
    """Every run at one accuracy per seed, except those given."""
    base = {k: [flat(80.0), flat(80.0)] for k in reproduce.RUNS}
    return base | {k: [flat(v) for v in values] for k, values in per_seed.items()}


def check(checks, start: str) -> tuple[bool, str]:
    (found,) = [(c.holds, c.measured) for c in checks if c.text.startswith(start)]
    return found


def shape_checks(rep):
    return reproduce.paper_claims(rep, reproduce.LABELS)


def test_ablation_above_fan_is_reported_as_failing_with_its_seeds():
    checks = shape_checks(reports({"fan": [80.0, 82.0], "fan-ce": [81.0, 81.5]}))
    ok, detail = check(checks, "FAN, CE on every")
    assert not ok  # mean +0.25 above FAN
    assert detail == "+0.2 (per seed +1.0, -0.5: 1 of 2 agree)"
    ok, detail = check(checks, "FAN w/o Specialized")  # 80 against FAN's 80 / 82
    assert ok and "per seed +0.0, -2.0: 1 of 2 agree" in detail


def test_fan_against_st_is_paired_by_seed_and_count():
    rep = reports({"st": [79.0, 83.0]})
    rep["fan"] = [report(dict.fromkeys(reproduce.EVAL_FRAMES, 80.0) | {4: 78.0}), flat(83.0)]
    ok4, detail4 = check(shape_checks(rep), "FAN ≥ ST at 4F")
    ok8, detail8 = check(shape_checks(rep), "FAN ≥ ST at 8F")
    assert not ok4 and detail4.startswith("-0.5 (per seed -1.0, +0.0")
    assert ok8 and detail8 == "+0.5 (per seed +1.0, +0.0: 2 of 2 agree)"


def test_a_partial_run_checks_only_the_claims_its_runs_can_test():
    rep = {k: v for k, v in reports({"fan-ce": [79.0, 79.0]}).items() if k in ("fan", "fan-ce")}
    checks = shape_checks(rep)
    assert [(c.text, c.holds) for c in checks] == [
        ("FAN, CE on every sub-network below full FAN on average (4/8/16F)", True)
    ]
    # FAN(k) would only repeat FAN
    assert present_tables(rep, reproduce.TABLES) == {
        "Table 1 analogue: baselines": ["fan"],
        "Ablations (Figure 9)": ["fan", "fan-ce"],
    }
    # a full run shows every table
    assert present_tables(reports({}), reproduce.TABLES) == reproduce.TABLES


def test_quick_sets_defaults_but_explicit_flags_win(tmp_path):
    args = reproduce.parse_args(["--quick", "--epochs", "5", "--out", str(tmp_path)])
    assert args.epochs == 5 and args.num_videos == reproduce.QUICK["num_videos"]
    assert reproduce.parse_args([]).epochs == 10
    # a partial run writes beside its runs, never over the published full results
    assert reproduce.parse_args(["--only", "fan"]).results == Path("runs/reproduce/results-only")
    assert reproduce.parse_args([]).results == Path("benchmarks/results/reproduce")


def test_damaged_report_is_a_one_line_error(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text('{"results": ')
    with pytest.raises(FanEdgeError) as e:
        read_report(path)
    msg = str(e.value)
    assert str(path) in msg and "delete it" in msg and "\n" not in msg


def settings_of(*argv: str) -> dict:
    args = reproduce.parse_args(list(argv))
    return reproduce.settings(args, reproduce.base_config(args))


def test_run_folder_refuses_other_settings(tmp_path):
    out = str(tmp_path)
    reproduce.check_settings(tmp_path, settings_of("--out", out))
    with pytest.raises(FanEdgeError, match="epochs 10 -> 3"):
        reproduce.check_settings(tmp_path, settings_of("--out", out, "--epochs", "3"))
    reproduce.check_settings(tmp_path, settings_of("--out", out))  # the same settings resume


def test_settings_keep_the_keys_and_values_older_run_folders_hold(tmp_path):
    # runs/scratch-gate50/settings.json as an earlier reproduce.py wrote it
    older = {
        "protocol": "scratch",
        "epochs": 10,
        "num_videos": 2000,
        "num_val": 500,
        "batch_size": 16,
        "lr": 0.1,
        "kd_warmup": 0.0,
        "kd_gate": 0.5,
        "pretrain_epochs": 0,
        "pretrain_videos": 2000,
        "data": "synthetic",
        "val": None,
        "preset": "tiny",
        "init": None,
    }
    mine = settings_of("--protocol", "scratch", "--kd-gate", "0.5", "--out", str(tmp_path))
    assert {k: mine[k] for k in older} == older
    assert set(mine) - set(older) == {"kd_after"} and mine["kd_after"] == KD_AFTER  # added since
    init = tmp_path / "start.pt"
    init.write_bytes(b"")
    mine = settings_of("--init", str(init), "--out", str(tmp_path))
    assert mine["init"] == str(init) and mine["lr"] == 0.02 and mine["kd_gate"] == 0.0
    assert mine["kd_after"] == 0.0


def test_a_bad_option_is_refused_before_the_run_folder_records_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", tiny_argv(tmp_path, "--kd-gate", "1.5"))
    with pytest.raises(SystemExit, match="^error: --kd-gate must be a finite number in"):
        reproduce.main()
    assert not (tmp_path / "runs" / "settings.json").exists()


def tiny_argv(tmp_path, *extra: str) -> list[str]:
    return [
        "reproduce.py",
        "--out",
        str(tmp_path / "runs"),
        "--results",
        str(tmp_path / "res"),
        "--epochs",
        "1",
        "--num-videos",
        "8",
        "--num-val",
        "8",
        "--batch-size",
        "4",
        "--pretrain-epochs",
        "0",
        *extra,
    ]


def test_repeated_seed_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        reproduce.parse_args(tiny_argv(tmp_path, "--seeds", "0", "0")[1:])


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_tiny_run_trains_evaluates_and_resumes(tmp_path, monkeypatch, jobs):
    out = tmp_path / "runs"
    argv = tiny_argv(tmp_path, "--seeds", "1", "0", "--jobs", str(jobs), "--only", "fan2")
    monkeypatch.setattr(sys, "argv", argv)
    reproduce.main()
    published = json.loads((tmp_path / "res" / "results.json").read_text())["top1"]["fan2"]
    stamps = {}
    for i, seed in enumerate((1, 0)):  # the report lists seeds in the order given
        result = json.loads((out / f"fan2_seed{seed}" / "eval.json").read_text())
        assert set(result["results"]) == {str(n) for n in reproduce.EVAL_FRAMES}
        assert result["trained_frames"] == [4, 16]
        assert published[i] == result["results"]
        stamps[seed] = (out / f"fan2_seed{seed}" / "checkpoint.pt").stat().st_mtime_ns
    text = (tmp_path / "res" / "RESULTS.md").read_text()
    assert "| FAN(2) 4/16 |" in text and "claims" not in text  # nothing to compare it with
    assert (tmp_path / "res" / "reproduce.png").stat().st_size > 0
    reproduce.main()  # finished runs are read back, not trained again
    for seed in (0, 1):
        assert (out / f"fan2_seed{seed}" / "checkpoint.pt").stat().st_mtime_ns == stamps[seed]


@pytest.mark.slow
def test_a_run_in_no_table_still_gets_its_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", tiny_argv(tmp_path, "--seeds", "0", "--only", "standard-4"))
    reproduce.main()
    assert (tmp_path / "runs" / "standard-4_seed0" / "eval.json").exists()
    assert "reproduce.png" not in (tmp_path / "res" / "RESULTS.md").read_text()

    import train_fit

    run = tmp_path / "runs" / "standard-4_seed0"
    capsys.readouterr()
    train_fit.main([str(run), "--num-videos", "8"])
    rows = capsys.readouterr().out.strip().splitlines()[2:]
    assert len(rows) == 1 and rows[0].startswith("| standard-4_seed0 | 4 | ")
    with pytest.raises(SystemExit, match="^error: no such checkpoint"):
        train_fit.main([str(tmp_path / "missing")])


def test_a_run_being_trained_elsewhere_is_waited_for_not_trained_twice(tmp_path):
    args = reproduce.parse_args(tiny_argv(tmp_path, "--seeds", "0")[1:])
    sweep = reproduce.make_sweep(args, None)
    folder = sweep.folder("fan2", 0)
    results = []
    with claimed(folder):  # as another process training this run would
        waiter = threading.Thread(target=lambda: results.append(train_and_eval(sweep, "fan2", 0)))
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive() and not results  # it waits for the run
        (folder / "eval.json").write_text(json.dumps(report({4: 50.0})))  # "the other" ends
    waiter.join(timeout=30)
    assert results == [report({4: 50.0})]
    assert not (folder / "checkpoint.pt").exists()  # read back, not trained again


@pytest.mark.parametrize("flags", [["--init", "missing.pt"], ["--data", "a.csv", "--val", "b.csv"]])
def test_missing_input_is_refused_before_the_run_folder_records_it(tmp_path, flags, capsys):
    with pytest.raises(SystemExit) as e:
        reproduce.parse_args(tiny_argv(tmp_path, *flags)[1:])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_unloadable_init_is_a_one_line_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    argv = tiny_argv(tmp_path, "--init", str(bad), "--seeds", "0", "--only", "fan2")
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as e:
        reproduce.main()
    assert str(e.value).startswith("error: cannot load checkpoint") and "\n" not in str(e.value)
    assert not (tmp_path / "runs" / "fan2_seed0" / "eval.json").exists()


def scratch_run(tmp_path, key, seed, curves_at: dict[int, list[float]], frames_seen: int):
    """A metrics.json as a validated training run writes it."""
    folder = tmp_path / f"{key}_seed{seed}"
    folder.mkdir(parents=True)
    epochs = [
        {
            "epoch": i + 1,
            "seconds": 60.0,
            "frames_seen": frames_seen,
            "val": {str(n): {"top1": c[i]} for n, c in curves_at.items()},
        }
        for i in range(len(next(iter(curves_at.values()))))
    ]
    (folder / "metrics.json").write_text(
        json.dumps({"model_config": {"num_classes": 20}, "epochs": epochs})
    )


def test_scratch_targets_are_checked_per_epoch_and_per_seed(tmp_path):
    slow = [5, 5, 5, 5, 5, 6, 30, 50, 60, 63]
    for seed in (0, 1):
        scratch_run(tmp_path, "standard-16", seed, {16: slow}, 32000)
        scratch_run(tmp_path, "standard-4", seed, {4: [10 * i for i in range(10)]}, 8000)
        scratch_run(tmp_path, "standard-8", seed, {8: [10 * i for i in range(10)]}, 16000)
    fan_16 = [5, 5, 5, 5, 5, 6, 27, 50, 60, 63]  # 3 points behind at epoch 7 on seed 0
    scratch_run(tmp_path, "fan", 0, {4: slow, 8: slow, 16: fan_16}, 56000)
    scratch_run(tmp_path, "fan", 1, {4: slow, 8: slow, 16: slow}, 56000)
    cur, num_classes = curves.load(tmp_path, ["fan", *curves.ST_PARTS, "missing"], [0, 1])
    assert set(cur) == {"fan", *curves.ST_PARTS} and num_classes == 20
    assert curves.plateau_exit(slow, num_classes) == 7  # 30% is a quarter of the way
    rep = {
        "fan": [report({4: 60.0, 8: 60.0, 16: 63.0})] * 2,
        "st": [report({4: 90.0, 8: 60.2, 16: 63.0})] * 2,
    }
    found = curves.checks(cur, rep)

    def claims(start):
        return [(c.holds, c.measured) for c in found if c.text.startswith(start)]

    assert claims("FAN 16F ≥ standard-16 − 2 at every epoch from 6") == [
        (True, "worst gap -1.5 (per seed -3.0, +0.0: 1 of 2 agree)")
    ]
    assert [ok for ok, _ in claims("FAN ≥ ST")] == [False, True, True]  # 8F within 0.5
    ((ok, detail),) = claims("FAN's training compute ≤ ST's")
    assert ok and detail.startswith("FAN 0.56M frames / 10.0 min, ST 0.56M frames")


def test_damaged_metrics_in_the_curves_are_a_one_line_error(tmp_path):
    (tmp_path / "fan_seed0").mkdir()
    (tmp_path / "fan_seed0" / "metrics.json").write_text('{"epochs": [')
    with pytest.raises(FanEdgeError) as e:
        curves.load(tmp_path, ["fan"], [0])
    assert "metrics.json" in str(e.value) and "\n" not in str(e.value)


def test_a_pretraining_stopped_by_a_signal_is_not_recorded_as_finished(tmp_path, monkeypatch):
    stopped = {"epoch": 1, "step": 9, "of": 125, "signal": "SIGINT"}
    monkeypatch.setattr(reproduce, "train_run", lambda *a, **k: {"epochs": [], "stopped": stopped})
    monkeypatch.setattr(reproduce, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
    args = reproduce.parse_args(["--quick", "--out", str(tmp_path)])
    with pytest.raises(FanEdgeError, match="stopped \\(SIGINT\\) in epoch 1"):
        reproduce.pretrain(args)
    assert not (tmp_path / "pretrain" / "eval.json").exists()
