"""The levers of the unsupervised lifter "ours": depth-only lifting, the
lift-again cycle, the symmetry prior, the weight EMA, the cosine learning rate, the seed
study and the 2D-only realism test. Hand computations and tiny CPU trainings."""

import json
import math
from pathlib import Path

import pytest
import torch
from test_train import STANDING, TINY, TRAIN, VAL

from lib.config import ConfigError, make_config, profile_name
from lib.geometry import project, random_rotation_y, rotation_matrices
from lib.losses import cycle_loss
from lib.models import build_models, lift_depth
from lib.priors import symmetry_loss
from lib.runs import load_run
from lib.study import StudyError, aggregate, check
from lib.train import Trainer
from lib.zoo import overrides

OURS = overrides("ours_one")  # one training of ours


def test_depth_lifting_reprojects_exactly():
    x = torch.randn(5, 32) * 0.05
    depth = torch.randn(5, 16) * 0.5
    pose = lift_depth(x, depth)
    assert torch.allclose(project(pose).flatten(1), x, atol=1e-6)
    assert torch.equal(pose.unflatten(1, (16, 3))[..., 2], depth)
    # hand case: x = 0.1, depth 2 -> X = 0.1 * (10 + 2) = 1.2
    one = lift_depth(torch.full((1, 32), 0.1), torch.full((1, 16), 2.0))
    assert torch.allclose(one.unflatten(1, (16, 3))[0, 0], torch.tensor([1.2, 1.2, 2.0]))


def test_depth_only_lifter_has_16_outputs_and_reprojects():
    lifter = build_models({"mode": "det_gan", "width": 32, "latent": 8,
                           "depth_only": True})["lifter"].eval()
    assert lifter.decoder.out.out_features == 16
    x = torch.randn(4, 32) * 0.05
    pose, _, _ = lifter(x, sample=False)
    assert pose.shape == (4, 48)
    assert torch.allclose(project(pose).flatten(1), x, atol=1e-6)
    assert lifter.hypotheses(x, 3).shape == (4, 3, 48)


def test_cycle_loss_is_zero_for_a_consistent_lifter_and_positive_otherwise():
    pose = torch.randn(6, 16, 3) * 0.3
    rotated, rot = random_rotation_y(pose, return_matrix=True,
                                     generator=torch.Generator().manual_seed(0))
    x = project(pose).flatten(1)
    d3, d2 = cycle_loss(pose, rotated, rot, x)  # the relift equals the rotated first lift
    assert d3.item() < 1e-6 and d2.item() < 1e-6
    shifted = rotated + torch.tensor([0.0, 0.0, 0.5])  # every joint 0.5 deeper in the new view
    d3, _ = cycle_loss(pose, shifted, rot, x)
    assert d3.item() == pytest.approx(0.5, abs=1e-5)  # a rotation keeps the 0.5 length


def test_rotation_matrix_is_returned_with_the_rotated_pose():
    pose = torch.randn(3, 16, 3)
    angles = torch.tensor([0.3, -1.0, 2.0])
    rotated, rot = random_rotation_y(pose, angles=angles, return_matrix=True)
    assert torch.allclose(rot, rotation_matrices(angles))
    assert torch.allclose(rotated, pose @ rot.transpose(-1, -2))


def test_symmetry_loss_by_hand():
    pose = torch.as_tensor(STANDING[1:] - STANDING[:1], dtype=torch.float32)[None]
    sym = symmetry_loss(pose)
    assert sym.item() < 1e-6  # the standing body is left/right symmetric
    longer = pose.clone()
    longer[0, 5] = longer[0, 4] + 2 * (longer[0, 5] - longer[0, 4])  # left shin twice as long
    # one pair of six differs: |2l - l| / (2l + l) = 1/3, averaged over 6 pairs
    assert symmetry_loss(longer).item() == pytest.approx(1 / 18, rel=1e-5)
    # a uniform scale changes nothing: the prior is on ratios
    assert symmetry_loss(3 * longer).item() == pytest.approx(1 / 18, rel=1e-5)


def test_a_cosine_run_is_another_run_for_another_number_of_epochs():
    from lib.runs import config_differences

    base = make_config({**TINY, "epochs": 4})
    assert config_differences(base, {**base, "epochs": 8}) == []  # constant lr: resumable
    cos = {**base, "lr_schedule": "cosine"}
    assert config_differences(cos, {**cos, "epochs": 8}) == ["epochs"]


def test_cosine_learning_rate():
    tr = Trainer({**TINY, "lr_schedule": "cosine", "epochs": 4}, "/tmp/unused", TRAIN, VAL)
    assert [tr.lr_at(e) for e in range(5)] == pytest.approx(
        [1e-3 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(5)])
    assert tr.lr_at(0) == pytest.approx(1e-3) and tr.lr_at(4) == pytest.approx(0.0)


def test_ours_trains_predicts_with_its_ema_and_resumes_bit_for_bit(tmp_path):
    cfg = {**TINY, **OURS, "epochs": 3, "lambda_sym": 0.01, "lambda_hinge": 0.01,
           "select_epochs": 0}  # the last epoch's average predicts (selection: see below)
    a = Trainer(cfg, tmp_path / "a", train=TRAIN, val=VAL)
    rows = a.fit()
    assert all(r["cycle"] > 0 and math.isfinite(r["loss"]) for r in rows)
    assert rows[-1]["cycle"] < rows[0]["cycle"]  # the views become consistent
    assert [r["lr"] for r in rows] == pytest.approx([a.lr_at(e) for e in range(3)])
    # the EMA is what load_run returns; its warm-up lets it follow a short run: it is
    # closer to the trained weights than to the initial ones
    raw, ema = a.lifter.state_dict(), a.ema.state_dict()
    init = Trainer(cfg, tmp_path / "init", train=TRAIN, val=VAL).lifter.state_dict()
    key = "encoder.mu.weight"
    assert (ema[key] - raw[key]).norm() < (ema[key] - init[key]).norm()
    assert a.ema_steps == 3 * (len(TRAIN["pose2d"]) // TINY["batch_size"])
    lifter, _, _ = load_run(tmp_path / "a", device="cpu")
    for k, v in lifter.state_dict().items():
        assert torch.equal(v, ema[k])
    # interrupted after 1 epoch and resumed: the same weights and the same EMA
    b = Trainer(cfg, tmp_path / "b", train=TRAIN, val=VAL)
    b.fit(stop_after=1)
    b2 = Trainer(cfg, tmp_path / "b", train=TRAIN, val=VAL)
    b2.fit(resume=True)
    for net in ("lifter", "ema"):
        sa, sb = getattr(a, net).state_dict(), getattr(b2, net).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), net


@pytest.mark.parametrize(("bad", "message"), [
    ({"ema": 1.0}, "ema"), ({"lr_schedule": "step"}, "lr_schedule"),
    ({"mode": "supervised", "depth_only": True}, "unsupervised"),
    ({"depth_only": True, "p_miss": 0.5}, "missing joints"),
    ({"lambda_cycle": 0.01, "p_miss": 0.5}, "lambda_cycle .* missing"),
    ({"mode": "supervised", "body_augment": 0.5}, "body_augment"),
    ({"dataset": "h36m", "body_augment": 0.5}, "body_augment"),
    ({"orient": True}, "orient .* depth_only"),
    ({"compile": "maybe"}, "compile must be"),
    ({"device": "gpu"}, "device 'gpu' is not a device"),
    ({"noise_on": "fake"}, "noise_on must be 'real' or 'both'"),
    ({"view_axis": "world"}, "view_axis must be 'camera' or 'up'"),
    ({"compile": "reduce-overhead", "device": "cpu"}, "reduce-overhead is a CUDA option"),
])
def test_bad_settings_of_ours_are_clear_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        make_config({**TINY, **bad})


def test_study_aggregates_mean_and_sample_std():
    agg = aggregate([50.0, 52.0, 54.0])
    assert agg["mean"] == 52.0 and agg["std"] == pytest.approx(2.0)
    assert aggregate([51.0])["std"] == 0.0
    json.dumps(agg)


@pytest.mark.parametrize(("models", "seeds", "message"), [
    (["ours"], 0, "at least 1 seed"), (["nosuch"], 3, "unknown model"), ([], 1, "one model"),
])
def test_study_refuses_before_training(models, seeds, message):
    with pytest.raises(StudyError, match=message):
        check("quick", models, seeds)


def test_kcs_features_are_bone_lengths_and_products():
    from lib.models import Discriminator, kcs_features

    x = torch.zeros(1, 32)
    x[0, 0:2] = torch.tensor([0.3, 0.0])  # r_hip 0.3 right of the pelvis
    x[0, 2:4] = torch.tensor([0.3, 0.4])  # r_knee 0.4 below it
    f = kcs_features(x)
    assert f.shape == (1, 136)
    # row 0 of the upper triangle: bone 0 (pelvis->r_hip) with bones 0..15
    assert f[0, 0].item() == pytest.approx(0.09)  # |(0.3, 0)|^2
    assert f[0, 1].item() == pytest.approx(0.0)  # (0.3, 0) . (0, 0.4): a right angle
    assert f[0, 16].item() == pytest.approx(0.16)  # bone 1 (r_hip->r_knee) squared
    assert Discriminator(width=16, features="kcs")(x).shape == (1, 1)
    with pytest.raises(ValueError, match="pose' or 'kcs'"):
        Discriminator(features="angles")


def test_error_split_and_depth_correlation_by_hand():
    from lib.diagnose import depth_correlation, error_split

    gt = torch.zeros(3, 17, 3)
    gt[:, 1] = torch.tensor([[100.0, 0, 50], [100.0, 0, -50], [100.0, 0, 10]])
    pred = gt.clone()
    pred[:, 1, 2] = -gt[:, 1, 2]  # the right hip mirrored in depth
    split = error_split(pred, gt)
    # scale first: s = <p, g> / <p, p> = (10000 - 2500) / 12500 for the first two poses
    assert split["image"][0] == 0
    assert split["depth"][1].item() > 0 and split["image"][1].item() > 0
    assert depth_correlation(pred, gt)[1].item() == pytest.approx(-1.0)
    assert depth_correlation(gt, gt)[1].item() == pytest.approx(1.0)


def test_a_run_saved_before_a_new_parameter_still_matches(tmp_path):
    from lib.config import DEFAULTS
    from lib.runs import Run

    cfg = make_config({**TINY, "epochs": 1})
    run = Run(tmp_path / "r")
    old = {k: v for k, v in cfg.items() if k != "disc_features"}  # written before the key
    run.write_config(old)
    (tmp_path / "r" / "done").write_text("1\n")
    assert run.matches(cfg) and run.finished(cfg)
    assert not run.matches({**cfg, "disc_features": "kcs"})
    assert DEFAULTS["disc_features"] == "pose"


def test_realism_test_catches_an_untrained_lifter(tmp_path):
    from lib.evaluate import realism_test

    tr = Trainer({**TINY, **OURS, "epochs": 1}, tmp_path / "r", train=TRAIN, val=VAL)
    (tmp_path / "r").mkdir()
    tr.save()  # weights straight from initialisation: random depths
    a = realism_test(tmp_path / "r", n=1024, steps=150, device="cpu", train=TRAIN)
    assert a["critic_accuracy"] > 70  # a fresh critic tells its novel views from real 2D
    assert a == realism_test(tmp_path / "r", n=1024, steps=150, device="cpu", train=TRAIN)


def test_study_refuses_a_profile_without_its_data(tmp_path, monkeypatch):
    import lib.experiment

    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "mine.yaml").write_text("dataset: h36m\nh36m_dir: /nowhere\n")
    monkeypatch.setattr(lib.experiment, "REPO", tmp_path)
    with pytest.raises(StudyError, match="no Human3.6M cache in /nowhere"):
        check("mine", ["ours"], 3)


def test_book_profile_is_a_name_or_a_path_and_means_it(tmp_path):
    from lib.experiment import model_config, params_path, run_dir

    mine = tmp_path / "mine.yaml"
    mine.write_text("mode: vae\nwidth: 48\n")
    assert params_path(str(mine)) == mine
    assert model_config(str(mine), "vae_gan")["width"] == 48  # the file's value, not quick's
    assert run_dir(str(mine), "ours", 2).parts[-2:] == (profile_name(mine), "ours-seed2")
    assert profile_name(mine).startswith("mine-")  # never a built-in profile's folder
    with pytest.raises(FileNotFoundError, match="nope.yaml: no such parameter file"):
        params_path(str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match="no such profile; known profiles: .*quick"):
        params_path("nosuch")


def test_orient_picks_the_sign_whose_knees_bend_forwards(tmp_path):
    from lib.runs import Run

    tr = Trainer({**TINY, **OURS, "epochs": 1}, tmp_path / "r", train=TRAIN, val=VAL)
    tr.fit()  # orient: true -> a sign is chosen at the end and stored
    run = Run(tmp_path / "r")
    assert run.oriented()
    sign = float(run.sign_path.read_text())
    lifter, norm, _ = run.load("cpu")
    assert lifter.depth_sign == sign
    x = torch.as_tensor(norm.pose2d(TRAIN["pose2d"]))  # the 2D that orient() looked at
    from lib.models import lift_all
    from lib.priors import backward_knee_rate

    chosen = lift_all(lifter, x)  # as the run predicts (with ours' test-time flip)
    lifter.depth_sign *= -1
    other = lift_all(lifter, x)
    assert backward_knee_rate(chosen) <= backward_knee_rate(other)
    # the choice is made again from the same 2D when asked: the same sign
    assert run.orient(TRAIN) == sign
    # the anatomical check reports the chosen sign's rate, in percent (len(TRAIN) < 20000)
    assert run.backward_knees(TRAIN) == pytest.approx(100 * float(backward_knee_rate(chosen)))
    # a fresh run in the folder forgets the old sign
    Trainer({**TINY, **OURS, "epochs": 1, "orient": False}, tmp_path / "r", train=TRAIN,
            val=VAL)
    run.sign_path.write_text("-1\n")
    assert run.load("cpu")[0].depth_sign == -1.0
    # the mirror keeps the input: a depth-only pose still reprojects exactly
    from lib.geometry import project

    assert torch.allclose(project(other).flatten(1), x, atol=1e-5)
    depth = lambda p: p.unflatten(1, (16, 3))[..., 2]  # noqa: E731
    assert torch.allclose(depth(other), -depth(chosen))


def test_stderr_in_an_executed_chapter_is_found(tmp_path):
    from lib.book import stderr_outputs

    nb = {"cells": [
        {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stdout",
                                           "text": ["fine\n"]}]},
        {"cell_type": "markdown"},
        {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stderr",
                                           "text": "TqdmWarning: IProgress not found\n"}]},
    ]}
    (tmp_path / "c.ipynb").write_text(json.dumps(nb))
    found = stderr_outputs(tmp_path / "c.ipynb")
    assert found == ["c.ipynb, cell 2: TqdmWarning: IProgress not found"]
    nb["cells"].pop()
    (tmp_path / "c.ipynb").write_text(json.dumps(nb))
    assert stderr_outputs(tmp_path / "c.ipynb") == []


def test_instance_noise_on_both_reaches_the_discriminator(monkeypatch):
    """noise_on: both adds the instance noise to the novel views the discriminator judges
    (one draw for both players); noise_on: real leaves them clean. Same seed, same step."""
    fakes = {}
    for where in ("real", "both"):
        seen = []
        tr = Trainer({**TINY, **OURS, "epochs": 1, "noise_on": where, "real_noise": 0.5},
                     "/nonexistent", train=TRAIN, val=VAL)
        forward = tr.disc.forward
        monkeypatch.setattr(tr.disc, "forward",
                            lambda x, f=forward, seen=seen: seen.append(x.detach()) or f(x))
        tr.step(tr.x[:64], tr.y[:64], torch.tensor(0.0))
        assert torch.equal(seen[0][64:], seen[1])  # the lifter is judged on the same views
        fakes[where] = seen[1]
    noise = fakes["both"] - fakes["real"]
    assert 0.45 < noise.std() < 0.55 and abs(noise.mean()) < 0.05


def test_dedupe_inline_scripts_keeps_the_first_of_a_repeated_script(tmp_path):
    from lib.book import dedupe_inline_scripts

    page = tmp_path / "book" / "a.html"
    page.parent.mkdir()
    page.write_text("<script>const A = 1</script><p>x</p><script>const A = 1</script>"
                    "<script>const B = 2</script><script src='s.js'></script>")
    assert dedupe_inline_scripts(tmp_path) == 1
    assert page.read_text() == ("<script>const A = 1</script><p>x</p>"
                                "<script>const B = 2</script><script src='s.js'></script>")


def test_the_chapters_get_a_profile_they_can_find_from_book(tmp_path, monkeypatch):
    """``--params params/default.yaml`` (relative to the caller) reaches the chapters, which
    run in book/, as the name; a file elsewhere as its absolute path."""
    from lib.experiment import REPO, params_path, profile_arg

    monkeypatch.chdir(REPO)
    assert profile_arg("params/quick.yaml") == "quick" == profile_arg("quick")
    own = tmp_path / "mine.yaml"
    own.write_text((REPO / "params" / "quick.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    arg = profile_arg("mine.yaml")
    assert arg == str(own.resolve())
    monkeypatch.chdir(REPO / "book")
    assert params_path(arg) == own.resolve()


def test_train_all_trains_two_at_a_time_then_reuses(tmp_path, capsys):
    """The book's worker pool: two tiny trainings in spawned processes, each reported as it
    starts and ends and evaluated on every test split in its worker; a second call finds
    both finished."""
    import time

    from lib.experiment import REPO, model_config, run_dir, test_splits
    from lib.pool import train_all
    from lib.runs import Run

    params = tmp_path / "pooltest.yaml"
    params.write_text((REPO / "params" / "quick.yaml").read_text()
                      + "epochs: 1\ntrain_size: 2048\nval_size: 64\n")
    profile = str(params)
    jobs = [("supervised", 0), ("vae", 0), ("supervised", 1)]  # the third waits for a worker
    try:
        timings = train_all(profile, jobs, workers=2, t0=time.time())
        assert set(timings) == {"train supervised", "train vae", "check supervised",
                                "check vae", "train supervised seed 1",
                                "check supervised seed 1"}
        for job in jobs:
            assert Run(run_dir(profile, *job)).finished(model_config(profile, *job))
            for split in test_splits(profile):  # the results chapter's evaluations, cached
                assert (run_dir(profile, *job) / f"eval-{split}.json").is_file()
        out = capsys.readouterr().out
        assert "3 of 3 trainings to do, 2 at a time" in out and "(3 of 3 finished)" in out
        assert train_all(profile, jobs, workers=2, t0=time.time()) == {}
        assert "all 3 trainings finished already" in capsys.readouterr().out
    finally:
        import shutil

        shutil.rmtree(REPO / "runs" / profile_name(params), ignore_errors=True)



def test_train_all_stops_its_workers_when_killed(tmp_path):
    """SIGTERM to a build (kill, a scheduler) stops its training processes too, instead of
    leaving them to run (and start the queued trainings) on their own."""
    import signal
    import subprocess
    import sys
    import time

    from lib.experiment import REPO

    params = tmp_path / "killtest.yaml"
    params.write_text((REPO / "params" / "quick.yaml").read_text() + "epochs: 50\n")
    code = ("import time; from lib.pool import train_all; "
            f"train_all({str(params)!r}, [('vae', 0), ('vae', 1), ('vae', 2)], 2, time.time())")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:  # wait until both workers have started training
            if "model 2 of 3" in line:
                break
        children = [int(p) for t in Path(f"/proc/{proc.pid}/task").iterdir()
                    for p in (t / "children").read_text().split()]
        assert len(children) >= 2  # the two workers (and multiprocessing's tracker)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
        deadline = time.time() + 30
        alive = children
        while alive and time.time() < deadline:
            alive = [p for p in alive if Path(f"/proc/{p}").exists()
                     and "zombie" not in Path(f"/proc/{p}/status").read_text()]
            time.sleep(0.2)
        assert not alive, f"training processes {alive} outlived their killed build"
    finally:
        proc.kill()
        import shutil

        shutil.rmtree(REPO / "runs" / profile_name(params), ignore_errors=True)


def test_test_time_flip_averages_the_mirrored_lift_and_stays_on_the_rays():
    from lib.geometry import Normalizer, flip
    from lib.models import lift_all

    torch.manual_seed(0)
    lifter = build_models({**TINY, **OURS})["lifter"].eval()
    x = torch.as_tensor(Normalizer.fit(TRAIN).pose2d(VAL["pose2d"][:64]))
    once = lift_all(lifter, x)
    back = flip(lift_all(lifter, flip(x, 2)), 3)  # the mirrored input's lift, mirrored back
    lifter.flip_test = True
    both = lift_all(lifter, x, batch=16)  # in batches as in one
    torch.testing.assert_close(both, 0.5 * (once + back))
    assert (both - once).abs().max() > 1e-4  # an untrained lifter is not mirror-symmetric
    # the mean of two points on a joint's ray is on that ray: it reprojects onto the input
    torch.testing.assert_close(project(both).flatten(1), x, atol=1e-5, rtol=1e-4)


def test_a_variant_evaluates_its_models_runs_and_is_no_training_job():
    from lib import zoo
    from lib.experiment import model_config, run_dir

    assert {v: zoo.trained(v) for v in zoo.variants() if zoo.get(v).role != "lever"} == {
        "ours_one": "ours", "ours_noflip": "ours"}
    plan = zoo.seed_plan(3)
    assert plan["ours_noflip"] == plan["ours"] == 3 and plan["vae_gan"] == 3
    assert plan["ours_camera"] == 1 and plan["ours_base"] == 1
    trained = [m for m in plan if not zoo.get(m).evaluates]
    assert sum(plan[m] for m in trained) == 19  # models x seeds
    trainings = sum(model_config("default", m, s)["restarts"] for m in trained
                    for s in range(plan[m]))
    assert trainings == 25  # the default build's: ours three times per seed
    assert model_config("default", "ours")["spare_restarts"] == 0  # removed by the lever study
    assert model_config("default", "ours_v1")["spare_restarts"] == 2
    assert all(plan[m] == 1 for m in plan if m not in (*zoo.seed_models(), *zoo.ablation()))
    assert zoo.seed_plan(1) == {m: 1 for m in zoo.book_models()}
    assert run_dir("quick", "ours_noflip", 2) == run_dir("quick", "ours", 2)
    a, b = model_config("quick", "ours"), model_config("quick", "ours_noflip")
    assert a["flip_test"] and not b["flip_test"]
    assert {k for k in a if a[k] != b[k]} == {"flip_test"}  # nothing that trains differs
    c, v1 = model_config("quick", "ours_v1_last"), model_config("quick", "ours_v1")
    assert {k for k in v1 if v1[k] != c[k]} == {"use_selection", "restarts"}
    assert not c["use_selection"] and c["restarts"] == 1
    assert {k for k in a if a[k] != v1[k]} == {"select_epochs", "spare_restarts", "input_noise",
                                               "up_freeze"}
    v2 = model_config("quick", "ours_v2")  # before the vertical study
    assert {k for k in a if a[k] != v2[k]} == {"up_freeze"} and a["up_freeze"]
    d = model_config("quick", "ours_one")
    assert {k for k in a if a[k] != d[k]} == {"restarts"} and d["restarts"] == 1
    assert zoo.one_training("ours") == "ours_one" and zoo.one_training("vae_gan") is None
    # the headline compares at equal compute too: ours' first training alone beside ours
    assert zoo.headline_models() == ["ours", "ours_one", "vae_gan", "supervised"]


def test_levers_tried_and_not_kept_train_on_request_but_not_in_the_book():
    from lib import zoo
    from lib.experiment import model_config

    tried = zoo.names("tried")
    assert set(tried).isdisjoint(zoo.book_models()) and set(tried).isdisjoint(zoo.seed_plan(3))
    tried_on = {"ours_sym0.1": "ours_camera", "ours_sym1": "ours_camera",
                "ours_tilt": "ours_nowarm", "ours_upema": "ours_nowarm",
                "ours_noise2": "ours_nowarm", "ours_clamp": "ours_nowarm",
                "ours_r1": "ours_nowarm"}  # all before the upright start
    lever = {"ours_sym0.1": "lambda_sym", "ours_sym1": "lambda_sym", "ours_tilt": "lambda_tilt",
             "ours_upema": "up_momentum", "ours_noise2": "real_noise",
             "ours_clamp": "up_tilt_range", "ours_r1": "lambda_r1"}
    assert set(tried_on) == set(tried)
    for name in tried:
        cfg, base = model_config("quick", name), model_config("quick", tried_on[name])
        assert {k for k in cfg if cfg[k] != base[k]} == {lever[name]}
        assert zoo.get(name).label
    check("quick", ["ours_camera", *tried], 2)  # a study accepts them


def test_the_ablation_of_ours_removes_one_lever_at_a_time():
    """Each row of the ablation differs from its parent in one lever (what the results
    chapter says it adds), and the chain of trained rows starts from ours."""
    from lib import zoo
    from lib.experiment import model_config

    chain = ["ours", "ours_one", "ours_clean", "ours_nowarm", "ours_camera", "ours_noise",
             "ours_hinge", "ours_base"]
    levers = [{"restarts"}, {"input_noise"}, {"up_warmup", "up_freeze"}, {"view_axis"},
              {"body_augment"},
              {"noise_on"}, {"lambda_hinge"}]
    for a, b, lever in zip(chain[:-1], chain[1:], levers, strict=True):
        ca, cb = model_config("quick", a), model_config("quick", b)
        assert {k for k in ca if ca[k] != cb[k]} == lever, (a, b)
        assert zoo.get(b).parent == a
    assert model_config("quick", "ours")["view_axis"] == "up"
    steps = zoo.ablation_steps()
    assert steps[0][:2] == ("ours_hinge", "ours_base") and steps[-1][:2] == ("ours", "ours_one")
    assert all(lever for _, _, lever in steps) and len(steps) == len(zoo.ablation())


def test_other_bodies_need_the_camera_of_each_pose(tmp_path):
    from lib.config import ConfigError

    no_camera = {k: v for k, v in TRAIN.items() if k != "camera"}
    with pytest.raises(ConfigError, match="no 'camera' indices"):
        Trainer({**TINY, **OURS, "epochs": 1}, tmp_path / "r", train=no_camera, val=VAL)


def test_novel_views_about_the_up_axis_are_turned_about_the_batchs_vertical():
    """view_axis: up turns each pose about the vertical estimated from the batch's own 3D:
    heights along that axis are kept, and the cycle's rotations are what made the views."""
    from lib.geometry import up_direction

    tr = Trainer({**TINY, **OURS, "epochs": 1, "view_axis": "up", "up_warmup": 0,
                  "up_freeze": False}, "/nonexistent",
                 train=TRAIN, val=VAL)
    pose = torch.as_tensor(tr.norm.pose3d(TRAIN["pose3d"][:64]))
    views, rot = tr.views(pose, tr.epoch)
    up = up_direction(pose)
    turned = pose.unflatten(-1, (16, 3)) @ rot.transpose(-1, -2)
    assert torch.allclose(turned @ up, pose.unflatten(-1, (16, 3)) @ up, atol=1e-5)
    assert torch.allclose(views, (turned[..., :2] / (turned[..., 2:] + 10.0)).flatten(1),
                          atol=1e-5)


def test_the_warm_up_turns_the_first_epochs_views_about_the_cameras_vertical():
    """up_warmup k: in epochs 1..k the novel views turn about the camera's y axis (each
    rotation keeps y), afterwards about the batch's vertical (a tilted one does not)."""
    tr = Trainer({**TINY, **OURS, "epochs": 3, "up_warmup": 2}, "/nonexistent",
                 train=TRAIN, val=VAL)
    pose = torch.as_tensor(tr.norm.pose3d(TRAIN["pose3d"][:64]))
    tilted = torch.tensor([0.0, -0.8, -0.6])  # a vertical leaning 37 degrees
    y = torch.tensor([0.0, 1.0, 0.0])
    for epoch, axis in ((0, "camera"), (1, "camera"), (2, "up")):
        tr.epoch = epoch
        assert tr.views.axis(epoch) == axis
        _, rot = tr.views(pose, epoch, tilted)
        keeps = torch.allclose(rot @ y, y.expand(64, 3), atol=1e-6)
        assert keeps == (axis == "camera"), epoch
        if axis == "up":
            assert torch.allclose(rot @ tilted, tilted.expand(64, 3), atol=1e-6)
    for bad in (-1, 1.5, "two"):
        with pytest.raises(ConfigError, match="up_warmup"):
            make_config({"up_warmup": bad})


def test_running_vertical_blends_batches_and_rejects_a_momentum_of_one():
    """up_momentum m: the views' axis is normalise(m * previous + (1 - m) * this batch's),
    starting from the first batch's own estimate; m = 1 (a frozen axis) is refused."""
    from lib.config import ConfigError, make_config
    from lib.geometry import up_direction
    from lib.views import NovelViews

    with pytest.raises(ConfigError, match="up_momentum"):
        make_config({"up_momentum": 1.0})
    views = NovelViews(make_config({"view_axis": "up", "up_momentum": 0.75}), None)
    upright = torch.zeros(4, 16, 3)
    upright[:, 7, 1] = -1.0  # every thorax straight above the pelvis (y points down)
    leaning = torch.zeros(4, 16, 3)
    leaning[:, 7] = torch.tensor([0.0, -1.0, -1.0])  # every trunk leaning 45 degrees
    first = views.vertical(up_direction(upright))
    torch.testing.assert_close(first, torch.tensor([0.0, -1.0, 0.0]))
    second = views.vertical(up_direction(leaning))
    blend = 0.75 * first + 0.25 * up_direction(leaning)
    torch.testing.assert_close(second, blend / blend.norm())
    torch.testing.assert_close(views.up_run, second)


def test_r1_penalty_is_the_squared_gradient_norm_at_the_reals(tmp_path):
    """For a linear critic w.x + b the R1 penalty is |w|^2 at every pose; with a quadratic
    critic sum(x^2) it is mean(4 |x|^2). Training with lambda_r1 logs the penalty and keeps
    the weights finite; a negative weight is refused."""
    from lib.losses import r1_penalty
    from lib.train import Trainer

    w = torch.tensor([1.0, -2.0, 0.5])
    x = torch.randn(8, 3, requires_grad=True)
    assert r1_penalty(x @ w + 3.0, x).item() == pytest.approx(w.pow(2).sum().item())
    y = torch.randn(8, 3, requires_grad=True)
    penalty = r1_penalty(y.pow(2).sum(1), y)
    assert penalty.item() == pytest.approx(4 * y.pow(2).sum(1).mean().item(), rel=1e-5)
    penalty.backward()  # its graph is kept: the penalty is itself differentiable
    torch.testing.assert_close(y.grad, 8 * y / len(y))
    with pytest.raises(ConfigError, match="lambda_r1"):
        make_config({"lambda_r1": -1.0})
    t = Trainer({**TINY, "mode": "det_gan", "lambda_r1": 1e-3}, tmp_path, TRAIN, VAL)
    stats = t.train_epoch()
    assert stats["r1"] > 0 and math.isfinite(stats["d_loss"])
    assert Trainer({**TINY, "mode": "det_gan"}, tmp_path, TRAIN, VAL).train_epoch()["r1"] == 0


def test_the_discriminator_learns_at_its_own_multiple_of_the_learning_rate(tmp_path):
    """lr_disc_scale s: after an epoch of the cosine schedule, the discriminator's learning
    rate is s times the lifter's; a non-positive scale is refused."""
    from lib.train import Trainer

    with pytest.raises(ConfigError, match="lr_disc_scale"):
        make_config({"lr_disc_scale": 0.0})
    cfg = {**TINY, "mode": "det_gan", "lr_schedule": "cosine", "lr_disc_scale": 0.25}
    t = Trainer(cfg, tmp_path, TRAIN, VAL)
    t.epoch = 1
    t.train_epoch()
    lifter_lr = t.opt.param_groups[0]["lr"]
    assert lifter_lr == pytest.approx(t.lr_at(1)) and lifter_lr < TINY["lr"]
    assert t.opt_d.param_groups[0]["lr"] == pytest.approx(0.25 * lifter_lr)


def test_clamp_tilt_holds_the_verticals_elevation_in_range_and_keeps_its_lean():
    """A vertical tilted 40 degrees towards the camera, held in [0, 30], comes back tilted 30
    with its sideways part unchanged and unit length; one inside the range is unchanged;
    a range that is not [low, high] degrees is refused."""
    from lib.geometry import clamp_tilt, tilt_of

    lean = 0.2
    r = math.sqrt(1 - lean**2)
    t = math.radians(40)
    up = torch.tensor([lean, -r * math.cos(t), -r * math.sin(t)])
    assert math.degrees(float(tilt_of(up))) == pytest.approx(40)
    held = clamp_tilt(up, 0.0, 30.0)
    want = torch.tensor([lean, -r * math.cos(math.radians(30)), -r * math.sin(math.radians(30))])
    torch.testing.assert_close(held, want)
    assert float(held.norm()) == pytest.approx(1.0)
    inside = clamp_tilt(up, -45.0, 45.0)
    torch.testing.assert_close(inside, up)
    below = clamp_tilt(torch.tensor([0.0, -math.cos(-0.3), -math.sin(-0.3)]), 0.0, 30.0)
    torch.testing.assert_close(below, torch.tensor([0.0, -1.0, 0.0]))
    for bad in ([30.0, 0.0], [0.0], "0-30", [0.0, 100.0]):
        with pytest.raises(ConfigError, match="up_tilt_range"):
            make_config({"up_tilt_range": bad})


def test_selection_keeps_the_last_epochs_and_the_2d_test_chooses_among_them(tmp_path):
    """select_epochs k: the averaged weights of the last k epochs are kept; after training
    the realism test (critic seed 1, 2D only) scores each, the lowest is copied to
    selected.pt and is what the run predicts with, unless the last epoch's are asked for."""
    from lib.runs import Run
    from lib.train import Trainer

    with pytest.raises(ConfigError, match="select_epochs"):
        make_config({"select_epochs": -1})
    cfg = {**TINY, **{k: v for k, v in OURS.items() if k != "body_augment"},
           "epochs": 3, "select_epochs": 2, "ema": 0.9}
    Trainer(cfg, tmp_path / "r", TRAIN, VAL).fit()
    run = Run(tmp_path / "r")
    assert sorted(p.name for p in (run.path / "candidates").iterdir()) == [
        "epoch-0002.pt", "epoch-0003.pt"]
    sel = json.loads(run.selection_path.read_text())
    scores = {int(e): a for e, a in sel["critic_accuracy"].items()}
    assert set(scores) == {2, 3} and sel["critic_seed"] == 1
    assert sel["chosen"] == min(scores, key=scores.get)
    chosen = torch.load(run.candidate_path(sel["chosen"]))
    picked = run.load("cpu")[0].state_dict()
    assert all(torch.equal(picked[k], chosen[k]) for k in chosen)
    last = run.load("cpu", selected=False)[0].state_dict()
    ema = torch.load(run.candidate_path(3))  # the last epoch's average is the checkpoint's
    assert all(torch.equal(last[k], ema[k]) for k in ema)
