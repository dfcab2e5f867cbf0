"""fan_edge.experiments: variants, run configs, idempotent run folders, settings, claims."""

import json

import pytest
import torch

from fan_edge.config import RunConfig
from fan_edge.errors import FanEdgeError
from fan_edge.experiments import Sweep, Variant, check_settings, diff_check, finished
from fan_edge.experiments.sweep import _seed_worker


def sweep(tmp_path, **variants) -> Sweep:
    return Sweep(
        variants=variants,
        out=tmp_path,
        base=RunConfig().replace(epochs=3, lr=0.02),
        frames=(4, 16),
        mode_defaults={"fan": dict(kd_gate=0.0)},
    )


def test_variant_options_are_run_options_and_evaluations_train_nothing():
    with pytest.raises(FanEdgeError, match="unknown run options learning_rate"):
        Variant("x", dict(learning_rate=0.1))
    with pytest.raises(FanEdgeError, match="takes no run options"):
        Variant("x", dict(lr=0.1), members=("a",))
    with pytest.raises(FanEdgeError, match="needs members"):
        Variant("x", ensemble=True)


def test_a_runs_config_is_base_then_mode_defaults_then_variant(tmp_path):
    s = sweep(
        tmp_path,
        std=Variant("std", dict(mode="standard", frames=(8,))),
        fan=Variant("fan", dict(frames=(4, 16))),  # the base's mode, fan
        recipe=Variant("recipe", dict(mode="fan", kd_gate=0.5)),
    )
    std, fan, recipe = (s.config(k, seed=3) for k in ("std", "fan", "recipe"))
    assert std.train.seed == 3 and std.train.epochs == 3 and std.train.lr == 0.02
    assert std.train.kd_gate == RunConfig().train.kd_gate  # FAN's schedule is not a standard's
    assert fan.train.kd_gate == 0.0 and fan.model.frames == (4, 16)
    assert recipe.train.kd_gate == 0.5  # the variant wins over its mode's defaults
    assert s.folder("fan", 3) == tmp_path / "fan_seed3"


def test_closure_adds_members_in_the_sweeps_order(tmp_path):
    s = sweep(
        tmp_path,
        a=Variant("a"),
        b=Variant("b"),
        both=Variant("both", members=("a", "b")),
        c=Variant("c"),
    )
    assert s.closure(["c", "both"]) == ["a", "b", "both", "c"]
    with pytest.raises(FanEdgeError, match="unknown variants nope"):
        s.closure(["nope"])


def test_a_finished_run_is_read_back_not_made_again(tmp_path):
    calls = []

    def make():
        calls.append(1)
        return {"results": {4: {"top1": 50.0}}}

    first = finished(tmp_path / "run", make)
    assert finished(tmp_path / "run", make) == first == {"results": {"4": {"top1": 50.0}}}
    assert len(calls) == 1  # and the report reads as a resumed sweep sees it: string keys


def test_settings_are_recorded_then_other_ones_refused(tmp_path):
    out = tmp_path / "new" / "out"
    check_settings(out, {"epochs": 10, "lr": 0.1})
    assert json.loads((out / "settings.json").read_text()) == {"epochs": 10, "lr": 0.1}
    check_settings(out, {"epochs": 10, "lr": 0.1, "added_later": 1})  # not compared
    with pytest.raises(FanEdgeError) as e:
        check_settings(out, {"epochs": 3, "lr": 0.2})
    assert "epochs 10 -> 3, lr 0.1 -> 0.2" in str(e.value) and "\n" not in str(e.value)


def test_a_workers_error_comes_back_as_a_message(tmp_path):
    # an evaluation of checkpoints that were never trained fails inside the worker
    s = sweep(tmp_path, a=Variant("a", dict(mode="standard")), st=Variant("st", members=("a",)))
    threads = torch.get_num_threads()
    try:
        seed, error = _seed_worker((s, 0, ["st"], 1))
    finally:
        torch.set_num_threads(threads)
    assert seed == 0 and "checkpoint" in error and not error.startswith("error:")
    assert not (tmp_path / "st_seed0" / "eval.json").exists()


def test_a_run_stopped_by_a_signal_is_not_evaluated_as_finished(tmp_path, monkeypatch):
    import fan_edge.train.api as api
    from fan_edge.experiments.sweep import train_and_eval

    stopped = {"epoch": 2, "step": 40, "of": 125, "signal": "SIGTERM"}
    monkeypatch.setattr(api, "train_run", lambda *a, **k: {"epochs": [], "stopped": stopped})
    monkeypatch.setattr(api, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
    s = sweep(tmp_path, a=Variant("a", dict(mode="standard")))
    with pytest.raises(FanEdgeError, match="stopped \\(SIGTERM\\) in epoch 2; run the same"):
        train_and_eval(s, "a", 0)
    assert not (tmp_path / "a_seed0" / "eval.json").exists()  # the next run resumes it


def test_diff_check_holds_on_the_mean_and_counts_agreeing_seeds():
    claim = diff_check("worse", [-1.0, 0.5, -2.0], want_negative=True)
    assert claim.holds and claim.measured == "-0.8 (per seed -1.0, +0.5, -2.0: 2 of 3 agree)"
    assert not diff_check("better", [-1.0, 0.5, -2.0], want_negative=False).holds
