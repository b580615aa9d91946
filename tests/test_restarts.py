"""Ours trained twice per seed, the 2D-only realism test keeping one (issue 12, lever 10), and
the bfloat16 setting that follows the hardware. Hand-made run folders and one tiny training."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from lib.config import ConfigError, bf16_enabled, cpu_has_bf16, make_config
from lib.runs import Run, RunError, choose_restart


def fake_run(folder: Path, scores: dict) -> Path:
    """A run folder with only what the choice reads: the realism scores of its kept epochs."""
    folder.mkdir(parents=True)
    (folder / "selection.json").write_text(json.dumps(
        {"critic_seed": 1, "critic_accuracy": scores, "chosen": min(scores, key=scores.get)}))
    return folder


def test_the_restart_whose_best_kept_weights_score_lowest_is_kept(tmp_path):
    a = fake_run(tmp_path / "ours", {"11": 88.0, "12": 86.5})
    b = fake_run(tmp_path / "ours-seed100", {"11": 90.2, "12": 85.9})
    chosen, scores = choose_restart([a, b])
    assert chosen == b and scores == [86.5, 85.9]  # each restart's best epoch, compared
    c = fake_run(tmp_path / "ours-seed200", {"12": 85.9})
    assert choose_restart([a, b, c])[0] == b  # a tie keeps the first
    assert choose_restart([a]) == (a, [])  # one training: nothing to choose, nothing read
    with pytest.raises(RunError, match="no restarts"):
        choose_restart([])
    (tmp_path / "bare").mkdir()
    with pytest.raises(RunError, match=r"bare/selection.json: no 2D-test scores"):
        choose_restart([a, tmp_path / "bare"])


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


@pytest.mark.parametrize(("bad", "message"), [
    ({"restarts": 0}, "restarts must be a positive integer"),
    ({"restarts": 1.5}, "restarts must be a whole number"),
    ({"restarts": 2, "select_epochs": 0}, "restarts > 1 needs select_epochs"),
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
    cpu = torch.device("cpu")
    assert bf16_enabled(True, cpu) and not bf16_enabled(False, cpu)
    for native in (True, False):  # auto: the CPU's own answer, whatever this machine has
        monkeypatch.setattr(lib.config, "cpu_has_bf16", lambda native=native: native)
        assert bf16_enabled("auto", cpu) is native
        assert bf16_enabled(True, cpu) and not bf16_enabled(False, cpu)
    assert make_config({"bf16": "auto"})["bf16"] == "auto"


def test_restart_seeds_and_their_names():
    from lib.book import RESTART_STRIDE, job_name, model_config, restart_seeds, run_dir

    assert restart_seeds("quick", "ours", 1) == [1, 1 + RESTART_STRIDE]
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


def test_report_names_the_choice_and_what_it_changed():
    from lib.report import restarts

    split = "test_unseen_styles"
    study = {
        "models": {"ours": {split: {"pa_mpjpe": {"values": [40.0, 41.0]}}},
                   "ours_one": {split: {"pa_mpjpe": {"values": [40.0, 58.0]}}}},
        "restarts": {"ours": [
            {"chosen": "ours", "runs": ["ours", "ours-seed100"], "critic_accuracy": [85.0, 87.0]},
            {"chosen": "ours-seed101", "runs": ["ours-seed1", "ours-seed101"],
             "critic_accuracy": [89.5, 84.0]}]}}
    text = restarts(study, "ours")
    assert "seed 0: 85.0% and 87.0%, kept training 1;" in text
    assert "seed 1: 89.5% and 84.0%, kept training 2 (58.0 -> 41.0 mm)" in text
    assert "changed the model on 1 of 2 seeds" in text
    assert restarts({"models": {}}, "ours") == ""  # a study without restarts says nothing
    del study["models"]["ours_one"]  # without the first trainings' errors: no mm, same count
    text = restarts(study, "ours")
    assert "kept training 2" in text and "->" not in text
    assert "changed the model on 1 of 2 seeds" in text


def test_ours_trains_each_restart_and_predicts_with_the_one_the_2d_test_kept(tmp_path):
    """ensure_run on a two-restart model: both trainings finished (seeds s and s + 100), the
    lower realism score kept, the choice recorded where lib.lift finds it."""
    from lib.book import REPO, ensure_run, restart_choice, run_dir
    from lib.lift import PoseLifter

    params = tmp_path / "restarttest.yaml"
    params.write_text((REPO / "params" / "quick.yaml").read_text()
                      + "epochs: 1\ntrain_size: 2048\nval_size: 64\n")
    profile = str(params)
    try:
        chosen = ensure_run(profile, "ours", progress=False)
        first, second = run_dir(profile, "ours"), run_dir(profile, "ours", 100)
        assert Run(first).finished() and Run(second).finished()
        record = restart_choice(profile, "ours")
        scores = [Run(f).selection_score() for f in (first, second)]
        assert record["critic_accuracy"] == scores and record["runs"] == [first.name,
                                                                           second.name]
        assert chosen == (first if scores[0] <= scores[1] else second)
        assert record["chosen"] == chosen.name and Run(first).chosen() == chosen
        assert ensure_run(profile, "ours_one", progress=False) == first
        assert PoseLifter.from_run(first).source == str(chosen)
        # the second training scored lower: ours is it, its first-training rows are not
        sel = json.loads(Run(second).selection_path.read_text())
        sel["critic_accuracy"] = {e: 0.0 for e in sel["critic_accuracy"]}
        Run(second).selection_path.write_text(json.dumps(sel))
        assert ensure_run(profile, "ours", progress=False) == second
        assert ensure_run(profile, "ours_noflip", progress=False) == second
        assert ensure_run(profile, "ours_one", progress=False) == first
        assert ensure_run(profile, "ours_last", progress=False) == first
        assert restart_choice(profile, "ours")["chosen"] == second.name
        assert PoseLifter.from_run(first).source == str(second)
    finally:
        shutil.rmtree(REPO / "runs" / "restarttest", ignore_errors=True)


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
