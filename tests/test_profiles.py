"""Which runs a parameter file may use and replace: a file outside params/ files
its runs under a name no built-in profile has, and the build replaces a finished run of
another parameter file, or of another configuration, only with --force."""

import pytest
import yaml

import lib.book
import lib.experiment
import lib.pool
from lib.config import REPO, is_builtin, make_config, profile_name, profile_source
from lib.runs import FORCE_ENV, Run, RunError, forced


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository of its own for lib.experiment and lib.book: params/quick.yaml (one
    short epoch) and runs/."""
    root = tmp_path / "repo"
    (root / "params").mkdir(parents=True)
    (root / "params" / "quick.yaml").write_text(
        (REPO / "params" / "quick.yaml").read_text()
        + "epochs: 1\ntrain_size: 2048\nval_size: 64\nprogress: false\n")
    for module in (lib.experiment, lib.book):
        monkeypatch.setattr(module, "REPO", root)
    monkeypatch.setattr(lib.experiment, "RUNS", root / "runs")
    monkeypatch.delenv(FORCE_ENV, raising=False)
    return root


def copy_of_quick(repo, where, **changes):
    """The user's copy of the built-in quick profile, ``quick.yaml`` in folder ``where``."""
    params = yaml.safe_load((repo / "params" / "quick.yaml").read_text())
    where.mkdir(parents=True, exist_ok=True)
    (where / "quick.yaml").write_text(yaml.safe_dump({**params, **changes}))
    return str(where / "quick.yaml")


def finished_run(folder, cfg, made_by=None):
    """A hand-made finished run of ``cfg`` (its weights: a few bytes to compare)."""
    run = Run(folder)
    run.write_config(make_config(cfg))
    run.checkpoint.write_bytes(b"the built-in profile's weights")
    run.done_path.write_text(f"{cfg['epochs']}\n")
    if made_by:
        run.record_made_by(made_by)
    return run


def test_a_file_outside_params_is_filed_under_its_stem_and_a_hash(tmp_path):
    assert profile_name(REPO / "params" / "quick.yaml") == "quick"
    assert profile_source(REPO / "params" / "quick.yaml") == "params/quick.yaml"
    assert is_builtin(REPO / "params" / "default.yaml")
    mine, other = tmp_path / "a" / "default.yaml", tmp_path / "b" / "default.yaml"
    for f in (mine, other):
        f.parent.mkdir()
        f.write_text("lr: 0.0005\n")
    assert not is_builtin(mine)
    name = profile_name(mine)
    assert name.startswith("default-") and len(name) == len("default-") + 8
    assert name != profile_name(other)  # two copies of one name: two folders
    assert profile_name(mine) == name  # the same file: always the same folder
    assert profile_source(mine) == str(mine.resolve())
    link = tmp_path / "params" / "linked.yaml"  # a built-in profile that links elsewhere
    link.parent.mkdir()
    link.symlink_to(mine)
    assert profile_name(link, tmp_path / "params") == "linked"
    assert profile_source(link, tmp_path / "params") == "params/linked.yaml"
    assert lib.experiment.profile_name(str(mine)) == name
    assert lib.experiment.profile_name("quick") == "quick"
    assert lib.experiment.run_dir(str(mine), "ours").parts[-2:] == (name, "ours")


def test_a_copy_of_a_builtin_profile_keeps_the_builtin_runs(repo, tmp_path):
    """The issue's report: a copy of params/quick.yaml named quick.yaml elsewhere, with
    another learning rate, trains beside the built-in profile's run, not over it."""
    builtin = finished_run(repo / "runs" / "quick" / "supervised",
                           lib.experiment.model_config("quick", "supervised"))
    copy = copy_of_quick(repo, tmp_path / "exp", lr=0.0005)
    run = lib.experiment.ensure_model(copy, "supervised")
    assert run.parent.name == profile_name(copy) != "quick"
    assert Run(run).finished() and Run(run).config()["lr"] == 0.0005
    assert Run(run).made_by() == str((tmp_path / "exp" / "quick.yaml").resolve())
    assert builtin.checkpoint.read_bytes() == b"the built-in profile's weights"
    assert builtin.config()["lr"] == 0.001


def test_a_finished_run_of_another_parameter_file_is_replaced_only_with_force(repo, tmp_path):
    folder = repo / "runs" / "quick" / "supervised"
    builtin = finished_run(folder, lib.experiment.model_config("quick", "supervised"))
    assert builtin.made_by() == "params/quick.yaml"  # made before the record: the built-in
    copy = copy_of_quick(repo, tmp_path / "exp", lr=0.0005)
    cfg = lib.experiment.model_config(copy, "supervised")
    with pytest.raises(RunError, match=r"runs/quick/supervised: holds a finished run made by "
                                       r"params/quick.yaml, not by .*exp/quick.yaml; pass "
                                       r"--force to replace it"):
        lib.experiment.ensure_training(cfg, folder, copy)
    assert builtin.checkpoint.read_bytes() == b"the built-in profile's weights"
    # the build checks every training it would start before it starts any
    finished_run(repo / "runs" / "quick" / "vae",
                 lib.experiment.model_config("quick", "vae", lr=0.5))
    with pytest.raises(RunError, match=r"runs/quick/vae: holds a finished run of another "
                                       r"configuration \(differs in \['lr'\]\)"):
        lib.pool.train_all("quick", [("supervised", 0), ("vae", 0)], 1, 0.0)
    lib.experiment.ensure_training(cfg, folder, copy, force=True)
    assert Run(folder).made_by() == profile_source(copy) and Run(folder).config()["lr"] == 5e-4


def test_an_edited_parameter_file_does_not_rewrite_its_finished_runs(repo, monkeypatch):
    """The same file, edited after its run finished: another learning rate would replace
    the run, two epochs instead of three would rewrite its config.yaml; both need --force."""
    params = repo / "params" / "quick.yaml"
    folder = repo / "runs" / "quick" / "supervised"
    lib.experiment.ensure_model("quick", "supervised")
    before = Run(folder).checkpoint.read_bytes()
    assert Run(folder).made_by() == "params/quick.yaml"
    params.write_text(params.read_text().replace("epochs: 1\n", "epochs: 2\n"))
    with pytest.raises(RunError, match=r"runs/quick/supervised: holds a finished run of another "
                                       r"configuration \(differs in \['epochs'\]\), made by "
                                       r"params/quick.yaml; pass --force to replace it"):
        lib.experiment.ensure_model("quick", "supervised")
    assert Run(folder).config()["epochs"] == 1 and Run(folder).checkpoint.read_bytes() == before
    params.write_text(params.read_text().replace("lr: 0.001\n", "lr: 0.0005\n"))
    with pytest.raises(RunError, match=r"differs in \['epochs', 'lr'\]"):
        lib.experiment.ensure_model("quick", "supervised")
    params.write_text(params.read_text().replace("lr: 0.0005\n", "lr: 0.001\n"))
    monkeypatch.setenv(FORCE_ENV, "1")  # what --force sets: resumed for its second epoch
    lib.experiment.ensure_model("quick", "supervised")
    assert Run(folder).config()["epochs"] == 2 and len(Run(folder).history()) == 2
    params.write_text(params.read_text().replace("epochs: 2\n", "epochs: 1\n"))
    lib.experiment.ensure_model("quick", "supervised")  # fewer epochs than it trained: afresh
    assert Run(folder).config()["epochs"] == 1 and len(Run(folder).history()) == 1
    assert Run(folder).epochs_done() == 1


def test_an_interrupted_run_of_the_same_file_is_still_resumed_or_replaced(repo):
    folder = repo / "runs" / "quick" / "supervised"
    run = Run(folder)
    run.write_config(make_config(lib.experiment.model_config("quick", "supervised", lr=0.5)))
    run.checkpoint.write_bytes(b"an interrupted training")
    assert run.in_the_way(lib.experiment.model_config("quick", "supervised"),
                          "params/quick.yaml") is None
    assert "an interrupted run made by params/quick.yaml" in run.in_the_way(
        lib.experiment.model_config("quick", "supervised"), "/elsewhere/quick.yaml")


def test_book_main_has_force_and_names_the_folder_of_an_outside_file(repo, tmp_path,
                                                                     monkeypatch, capsys):
    copy = copy_of_quick(repo, tmp_path / "exp")
    seen = {}
    monkeypatch.setattr(lib.book, "build", lambda args: seen.update(
        force=forced(), params=args.params))
    lib.book.main(["--params", copy, "--force"])
    assert seen == {"force": True, "params": str((tmp_path / "exp" / "quick.yaml").resolve())}
    out = capsys.readouterr().out
    assert f"so its runs are filed under runs/{profile_name(copy)}/" in out
    monkeypatch.delenv(FORCE_ENV)
    lib.book.main(["--params", "quick"])
    assert seen["force"] is False and "filed under" not in capsys.readouterr().out
