"""Ours trained three times per seed and the trainings whose lifts agree averaged (lever
10), and the bfloat16 setting that follows the hardware. Hand-made run folders and one
tiny training."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from lib.config import ConfigError, bf16_enabled, cpu_has_bf16, make_config, profile_name
from lib.runs import Run, RunError


def test_restarts_whose_lifts_agree_are_averaged():
    """agreeing: two restarts agree when their lifts are closer to each other than either is
    to the flat lift; the largest group of which every two agree, the closest on a tie."""
    from lib.choose import agreeing

    flat = [68.0, 35.0, 70.0]  # training 2 barely adds depth (a failed training)
    pairs = [[0, 88, 20], [88, 0, 86], [20, 86, 0]]
    assert agreeing(pairs, flat) == [0, 2]  # 88 > 35: training 2 agrees with neither
    pairs = [[0, 30, 20], [30, 0, 25], [20, 25, 0]]
    assert agreeing(pairs, [68.0, 65.0, 70.0]) == [0, 1, 2]  # all three agree
    assert agreeing(pairs, [68.0, 24.0, 70.0]) == [0, 2]  # 25 and 30 > 24: not with 2
    # 0-1 and 1-2 agree but 0-2 do not: two pairs of two, the closer one wins
    pairs = [[0, 40, 80], [40, 0, 30], [80, 30, 0]]
    assert agreeing(pairs, [60.0, 60.0, 60.0]) == [1, 2]
    assert agreeing([[0, 70], [70, 0]], [60.0, 65.0]) == []  # no two agree: the test decides
    assert agreeing([[0, 60], [60, 0]], [60.0, 65.0]) == []  # equal is not closer


def test_a_run_folder_points_to_its_chosen_restart(tmp_path):
    first = Run(tmp_path / "ours")
    first.path.mkdir()
    assert first.chosen() == first.path  # no restarts.json: itself
    first.restarts_path.write_text(json.dumps({"chosen": "ours-seed100"}))
    with pytest.raises(RunError, match="names 'ours-seed100', which is not a finished"):
        first.chosen()  # a choice among runs that are not there (any more)
    first.restarts_path.write_text(json.dumps({"chosen": "ours-seed100",
                                               "runs": ["ours", "ours-seed100"]}))
    (tmp_path / "ours-seed100").mkdir()
    (tmp_path / "ours-seed100" / "done").write_text("3\n")
    assert first.chosen() == tmp_path / "ours-seed100"
    kept = Run(tmp_path / "ours-kept")  # an average of restarts, one of which is unfinished
    kept.set_members([tmp_path / "ours-seed100", tmp_path / "ours-seed200"])
    first.restarts_path.write_text(json.dumps({
        "chosen": "ours-kept", "runs": ["ours", "ours-seed100", "ours-seed200"]}))
    with pytest.raises(RunError, match="names 'ours-kept', which is not a finished"):
        first.chosen()
    (tmp_path / "ours-seed200").mkdir()
    (tmp_path / "ours-seed200" / "done").write_text("3\n")
    assert first.chosen() == kept.path and kept.finished()
    assert kept.members() == [tmp_path / "ours-seed100", tmp_path / "ours-seed200"]


@pytest.mark.parametrize(("bad", "message"), [
    ({"restarts": 0}, "restarts must be a positive integer"),
    ({"restarts": 1.5}, "restarts must be a whole number"),
    ({"spare_restarts": -1}, "spare_restarts must be a whole number >= 0"),
    ({"spare_restarts": 1.5}, "spare_restarts must be a whole number"),
    ({"bf16": "yes"}, "bf16 must be true, false or 'auto'"),
])
def test_bad_restarts_and_bf16_settings_are_clear_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        make_config(bad)


def test_restarts_do_not_make_another_run():
    """Restarts choose among runs; one run's training does not depend on how many there are."""
    from lib.runs import config_differences

    a = make_config({"select_epochs": 6, "restarts": 2})
    assert config_differences(a, make_config({"select_epochs": 6})) == []


def test_bf16_auto_follows_the_cpu_flags(tmp_path, monkeypatch):
    import lib.config

    with_bf16 = tmp_path / "bf16"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    without = tmp_path / "plain"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512bw\n")
    assert cpu_has_bf16(with_bf16) and not cpu_has_bf16(without)
    assert not cpu_has_bf16(tmp_path / "missing")  # unreadable: float32
    from lib.config import cpu_model

    named = tmp_path / "named"
    named.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu\n")
    assert cpu_model(named) == "AMD EPYC 9R14"  # what a build's timings name
    assert cpu_model(without) == "unknown" and cpu_model(tmp_path / "missing")
    cpu = torch.device("cpu")
    assert bf16_enabled(True, cpu) and not bf16_enabled(False, cpu)
    for native in (True, False):  # auto: the CPU's own answer, whatever this machine has
        monkeypatch.setattr(lib.config, "cpu_has_bf16", lambda native=native: native)
        assert bf16_enabled("auto", cpu) is native
        assert bf16_enabled(True, cpu) and not bf16_enabled(False, cpu)
        # a build's timings say what its profile's setting trained in on this CPU
        from lib.book import host

        assert host("auto")["trains_in"] == ("bfloat16" if native else "float32")
        assert host(False)["trains_in"] == "float32" and host(True)["trains_in"] == "bfloat16"
    assert make_config({"bf16": "auto"})["bf16"] == "auto"


def test_restart_seeds_and_their_names():
    from lib.experiment import RESTART_STRIDE, model_config, restart_seeds, run_dir
    from lib.pool import job_name

    assert restart_seeds("quick", "ours", 1) == [1, 1 + RESTART_STRIDE, 1 + 2 * RESTART_STRIDE]
    assert restart_seeds("quick", "ours_one", 1) == [1]  # its first training only
    assert restart_seeds("quick", "vae_gan", 2) == [2]
    assert job_name("ours", 0) == "ours" and job_name("ours", 2) == "ours (seed 2)"
    assert job_name("ours", 102) == "ours (seed 2, restart 2)"
    assert run_dir("quick", "ours", 102).name == "ours-seed102"
    a, b = model_config("quick", "ours", 102), model_config("quick", "ours", 2)
    assert a["seed"] == b["seed"] + RESTART_STRIDE


def test_a_study_takes_no_more_seeds_than_the_restarts_leave():
    from lib.study import StudyError, check

    with pytest.raises(StudyError, match="at most 100 seeds"):
        check("quick", ["ours"], 101)


def test_report_names_what_each_seed_averages_and_what_it_changed():
    from lib.report import restarts

    split = "test_unseen_styles"
    runs0, runs1 = ["ours", "ours-seed100", "ours-seed200"], ["ours-seed1", "ours-seed101",
                                                            "ours-seed201"]
    study = {
        "models": {"ours": {split: {"pa_mpjpe": {"values": [42.0, 41.0]}}},
                   "ours_one": {split: {"pa_mpjpe": {"values": [88.9, 40.4]}}}},
        "restarts": {"ours": [
            {"chosen": "ours-kept", "runs": runs0, "members": runs0[1:], "poses": 5000,
             "pairs": [[0, 88.7, 90.1], [88.7, 0, 30.0], [90.1, 30.0, 0]],
             "flat": [35.1, 68.8, 66.0], "critic_accuracy": [90.8, 86.7, 87.0]},
            {"chosen": "ours-seed101", "runs": runs1, "members": ["ours-seed101"],
             "poses": 5000, "pairs": [[0, 80, 80], [80, 0, 80], [80, 80, 0]],
             "flat": [60.0, 60.0, 60.0], "critic_accuracy": [89.5, 84.0, 86.0]}]}}
    text = restarts(study, "ours")
    assert ("seed 0: trainings 2 and 3 averaged (training 1 lies 89 mm from the nearest of "
            "them and 35 mm from the flat lift), 88.9 -> 42.0 mm;") in text
    assert ("seed 1: no two agree, training 2 kept by the realism test (89.5% / 84.0% / "
            "86.0%), 40.4 -> 41.0 mm.") in text
    assert "lifts of 5000 training 2D poses" in text
    assert "averages several trainings on 1 of 2 seeds" in text
    assert "spare" not in text  # records from before spares say nothing of them
    runs0.append("ours-seed300")  # a spare for training 1, which agreed with no other
    study["restarts"]["ours"][0].update(
        members=runs0[1:], spares=1, flat=[35.1, 68.8, 66.0, 67.0],
        pairs=[[0, 88.7, 90.1, 91.0], [88.7, 0, 30.0, 25.0], [90.1, 30.0, 0, 28.0],
               [91.0, 25.0, 28.0, 0]])
    study["restarts"]["ours"][1]["spares"] = 0
    text = restarts(study, "ours")
    assert ("seed 0: trainings 2, 3 and 4 averaged (training 1 lies 89 mm from the nearest of "
            "them and 35 mm from the flat lift; training 4 a spare), 88.9 -> 42.0 mm;") in text
    assert "1 of the 7 trainings was a spare" in text
    assert restarts({"models": {}}, "ours") == ""  # a study without restarts says nothing
    del study["models"]["ours_one"]  # without the first trainings' errors: no mm
    text = restarts(study, "ours")
    assert "trainings 2, 3 and 4 averaged" in text and "->" not in text


def test_ours_trains_each_restart_and_predicts_with_what_agrees(tmp_path):
    """ensure_model on a three-restart model: every training finished (seeds s, s + 100 and
    s + 200), their lifts compared from 2D alone, the model the mean of those that agree (or
    the one the realism test keeps), recorded where lib.lift finds it (no spares here: the
    next test trains them)."""
    from lib.choose import agreeing
    from lib.evaluate import predictions
    from lib.experiment import REPO, ensure_model, kept_dir, restart_choice, restart_score, run_dir
    from lib.lift import PoseLifter

    params = tmp_path / "restarttest.yaml"
    params.write_text((REPO / "params" / "quick.yaml").read_text()
                      + "epochs: 1\ntrain_size: 2048\nval_size: 64\n")
    profile = str(params)
    try:
        chosen = ensure_model(profile, "ours", progress=False, spare_restarts=0)
        folders = [run_dir(profile, "ours", s) for s in (0, 100, 200)]
        assert all(Run(f).finished() for f in folders)
        record = restart_choice(profile, "ours")
        assert record["runs"] == [f.name for f in folders]
        scores = [restart_score(f) for f in folders]  # ours keeps no epochs: its last weights
        group = agreeing(record["pairs"], record["flat"]) or [scores.index(min(scores))]
        assert record["members"] == [folders[i].name for i in group]
        assert record["critic_accuracy"] == scores
        assert chosen == (folders[group[0]] if len(group) == 1 else kept_dir(profile, "ours"))
        assert record["chosen"] == chosen.name and Run(folders[0]).chosen() == chosen
        assert PoseLifter.from_run(folders[0]).source == str(chosen)
        # make all three agree: ours is their mean, the first training alone is ours_one
        record = {**record, "members": [f.name for f in folders]}
        Run(folders[0]).record_restarts(record)  # newer than the weights: reused
        kept = ensure_model(profile, "ours", progress=False, spare_restarts=0)
        assert kept == kept_dir(profile, "ours") and Run(kept).members() == folders
        assert restart_choice(profile, "ours")["members"] == [f.name for f in folders]
        mean = sum(predictions(f, "test_unseen_styles", size=32)["pred"] for f in folders) / 3
        got = predictions(kept, "test_unseen_styles", size=32)["pred"]
        # the mean of the members' lifts (in mm through the first member's normaliser: the
        # tiny profile's seeds draw different training subsets, whose scales differ by 0.1%)
        assert torch.allclose(got, mean, rtol=2e-3, atol=0.1)
        assert not torch.allclose(got, predictions(folders[0], "test_unseen_styles",
                                                   size=32)["pred"], rtol=2e-3, atol=0.1)
        assert ensure_model(profile, "ours_noflip", progress=False, spare_restarts=0) == kept
        assert ensure_model(profile, "ours_one", progress=False, spare_restarts=0) == folders[0]
        assert PoseLifter.from_run(folders[0]).source == str(kept)
        assert len(Run(kept).history()) == 1  # the first member's epochs
        # back to one member: the average's folder goes, and that training predicts
        Run(folders[0]).record_restarts({**record, "members": [folders[1].name]})
        assert ensure_model(profile, "ours", progress=False, spare_restarts=0) == folders[1]
        assert not kept.exists() and Run(folders[0]).chosen() == folders[1]
    finally:
        shutil.rmtree(REPO / "runs" / profile_name(params), ignore_errors=True)


def test_a_training_that_agrees_with_no_other_is_replaced_by_a_spare(tmp_path, monkeypatch):
    """While fewer trainings agree than were planned, ensure_model trains a spare restart (seed
    s + 300, then s + 400) and chooses again among all of them, at most spare_restarts times;
    the record counts the spares and restart_seeds names them, so a rebuild trains them up
    front and reuses the choice (ours before the lever study, which had spares)."""
    import lib.evaluate
    import lib.experiment
    from lib.experiment import REPO, ensure_model, kept_dir, restart_choice, restart_seeds

    params = tmp_path / "sparetest.yaml"
    params.write_text((REPO / "params" / "quick.yaml").read_text()
                      + "epochs: 1\ntrain_size: 512\nval_size: 64\n")
    profile = str(params)
    calls = []

    def choose(folders, train, left_out=("ours_v1-seed100",)):  # training 2 agrees with none
        names = [Path(f).name for f in folders]
        calls.append(names)
        members = [n for n in names if n not in left_out][:3]
        return {"runs": names, "members": members, "pairs": [], "flat": [], "poses": 0,
                "critic_accuracy": [], "critic_seed": 1}

    monkeypatch.setattr(lib.experiment, "choose_restarts", choose)
    # each training's choice of an epoch is not under test here: a constant score, no critic
    monkeypatch.setattr(lib.evaluate, "lifter_realism", lambda *a, **k: {"critic_accuracy": 50.0})
    try:
        assert ensure_model(profile, "ours_v1", progress=False) == kept_dir(profile, "ours_v1")
        assert calls == [["ours_v1", "ours_v1-seed100", "ours_v1-seed200"],
                         ["ours_v1", "ours_v1-seed100", "ours_v1-seed200", "ours_v1-seed300"]]
        record = restart_choice(profile, "ours_v1")
        assert record["members"] == ["ours_v1", "ours_v1-seed200", "ours_v1-seed300"]
        assert record["spares"] == 1 and record["chosen"] == "ours_v1-kept"
        assert restart_seeds(profile, "ours_v1") == [0, 100, 200, 300]
        assert restart_seeds(profile, "ours_v1_one") == [0]
        assert ensure_model(profile, "ours_v1", progress=False) == kept_dir(profile, "ours_v1")
        assert len(calls) == 2  # the choice among four is reused
        # where only one ever agrees with itself: two spares, then the choice stands
        monkeypatch.setattr(lib.experiment, "choose_restarts",
                            lambda f, t: choose(f, t, left_out=[Path(x).name for x in f][1:]))
        assert ensure_model(profile, "ours_v1", 1, progress=False).name == "ours_v1-seed1"
        assert [len(c) for c in calls[2:]] == [3, 4, 5]
        assert restart_seeds(profile, "ours_v1", 1) == [1, 101, 201, 301, 401]
        assert restart_choice(profile, "ours_v1", 1)["spares"] == 2
    finally:
        shutil.rmtree(REPO / "runs" / profile_name(params), ignore_errors=True)


def test_a_fresh_training_forgets_an_earlier_choice_of_restart(tmp_path):
    """restarts.json belongs to the trainings it compared: training the folder afresh drops
    it, so lib.lift cannot follow a choice made among runs that no longer exist."""
    from test_train import TINY, TRAIN, VAL

    from lib.train import Trainer

    run = Run(tmp_path / "ours")
    run.path.mkdir()
    run.restarts_path.write_text(json.dumps({"chosen": "ours-seed100"}))
    Trainer({**TINY, "epochs": 1}, run.path, train=TRAIN, val=VAL).fit(force=True)
    assert not run.restarts_path.exists() and run.chosen() == run.path
