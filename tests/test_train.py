"""The trainer (lib/train.py) on small, geometrically consistent synthetic data: random
standing-ish people in camera coordinates about 5 m away, projected by the rig's four cameras, so
that 2D and 3D agree as in the real splits. Tiny networks, CPU."""

import json

import numpy as np
import pytest
import torch
import yaml

from lib.camera import Rig
from lib.camera import project as project_px
from lib.config import DEFAULTS, REPO, ConfigError, load_params, make_config, parse_overrides
from lib.geometry import project, random_flip_pair
from lib.losses import projection_loss
from lib.runs import RunError, is_finished, load_run, read_history
from lib.train import Trainer, main

# camera coordinates (x right, y down, z forward), mm, pelvis at the origin, facing -z
STANDING = np.array([
    [0, 0, 0], [-130, 0, 0], [-130, 420, -30], [-130, 840, 0],
    [130, 0, 0], [130, 420, -30], [130, 840, 0],
    [0, -230, 0], [0, -480, 0], [0, -580, -60], [0, -700, 0],
    [180, -460, 0], [220, -180, 0], [230, 50, -40],
    [-180, -460, 0], [-220, -180, 0], [-230, 50, -40],
], dtype=np.float64)  # fmt: skip


def make_split(n, seed=0):
    """Poses turned about the vertical, arms and legs swung, jittered, 4.7-5.3 m away."""
    rng = np.random.default_rng(seed)
    pose = np.repeat(STANDING[None], n, axis=0)
    for shoulder, elbow, wrist in ((11, 12, 13), (14, 15, 16)):  # swing the arms forwards
        a = rng.uniform(-1.2, 1.2, n)[:, None]
        for j in (elbow, wrist):
            rel = pose[:, j] - pose[:, shoulder]
            pose[:, j] = pose[:, shoulder] + np.stack(
                [rel[:, 0], rel[:, 1] * np.cos(a[:, 0]) + rel[:, 2] * np.sin(a[:, 0]),
                 -rel[:, 1] * np.sin(a[:, 0]) + rel[:, 2] * np.cos(a[:, 0])], -1)
    yaw = rng.uniform(-np.pi, np.pi, n)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1, -s, c
    pose = pose @ rot.transpose(0, 2, 1) + rng.normal(0, 15, (n, 17, 3))
    pose -= pose[:, :1]
    pose += rng.uniform([-300, -200, 4700], [300, 200, 5300], (n, 1, 3))
    camera = np.arange(n) % 4  # seen by the rig's four cameras, as the real splits are
    pose2d = project_px(pose, Rig().intrinsics()[camera][:, None])
    return {"pose3d": pose.astype(np.float32), "pose2d": pose2d.astype(np.float32),
            "camera": camera}


TRAIN = make_split(2048)
VAL = make_split(256, seed=1)
TINY = dict(width=32, latent=8, batch_size=256, epochs=2, lr=1e-3, progress=False,
            device="cpu", val_size=256, kld_warmup=1, kld_cycle=2, kld_hold=1,
            checkpoint_every=1)
HISTORY_KEYS = {"loss", "proj", "kld", "adv", "d_loss", "d_real", "d_fake", "d_acc", "hinge",
                "sym", "cycle", "tilt", "tilt_deg", "r1", "epoch", "beta", "lr", "seconds", "poses",
                "val_pa_mpjpe", "val_depth_corr", "val_pa_mpjpe_reflect", "val_hist"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run fastest on one thread; with two, a busy 2-core machine makes the
    threads wait on each other (an epoch went from 0.1 s to 40 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(tmp_path, name="run", train=TRAIN, **params):
    cfg = {**TINY, **params}
    return Trainer(cfg, tmp_path / name, train=train, val=VAL), cfg


def without_time(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_synthetic_data_is_consistent():
    """The helper's 2D is the projection of its 3D (so the tests train on real geometry)."""
    p3, p2 = TRAIN["pose3d"].astype(np.float64), TRAIN["pose2d"]
    intr = Rig().intrinsics()[TRAIN["camera"]]  # (N, 4): fx, fy, cx, cy
    expected = p3[..., :2] / p3[..., 2:] * intr[:, None, :2] + intr[:, None, 2:]
    np.testing.assert_allclose(expected, p2, atol=1e-2)
    assert 4000 < p3[..., 2].min() and p3[..., 2].max() < 6000


def test_vae_gan_lowers_the_projection_loss(tmp_path):
    tr, _ = run(tmp_path, batch_size=64, epochs=8, val_every=8, checkpoint_every=8)
    rows = tr.fit()  # 8 epochs x 32 steps
    assert len(rows) == 8 and rows[-1]["epoch"] == 8
    assert rows[-1]["proj"] < 0.5 * rows[0]["proj"]
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert 0 < rows[-1]["d_real"] < 1 and 0 < rows[-1]["d_fake"] < 1
    # the lifted validation poses reproject onto their 2D inputs better than chance
    with torch.no_grad():
        tr.lifter.eval()
        pred = tr.lifter(tr.val_x, sample=False)[0]
    assert projection_loss(pred, tr.val_x).item() < 0.5 * rows[0]["proj"]
    assert project(pred).shape == (len(tr.val_x), 16, 2)
    assert 0 < rows[-1]["val_pa_mpjpe"] < 400  # mm; monitoring only, no accuracy claim


def test_supervised_overfits_a_tiny_batch(tmp_path):
    tiny = {k: v[:64] for k, v in TRAIN.items()}
    tr, _ = run(tmp_path, train=tiny, mode="supervised", width=64, batch_size=64, epochs=300,
                flip_p=0.0, lr=3e-3, val_every=1000, checkpoint_every=1000)
    rows = tr.fit()
    assert rows[-1]["loss"] < rows[0]["loss"] / 10
    assert {r["proj"] for r in rows} == {0.0}  # supervised: no projection term
    # in eval mode (no dropout) the lifter reproduces its 64 training targets
    with torch.no_grad():
        tr.lifter.eval()
        pred = tr.lifter(tr.x)[0]
    assert torch.nn.functional.mse_loss(pred, tr.y).item() < rows[0]["loss"] / 10


@pytest.mark.parametrize(("every", "stop"), [(1, 2), (2, 3), (3, 2)])
def test_resume_equals_uninterrupted(tmp_path, every, stop):
    """4 epochs straight == `stop` epochs, a new Trainer, resume to 4 (parameters bit for
    bit). With checkpoints every 2 epochs and a stop after 3, the resumed run restarts from
    epoch 2 and drops the history line of epoch 3; with checkpoints every 3 and a stop after
    2 there is no checkpoint yet: --resume says so, and a fresh start gives the same run."""
    cfg = {**TINY, "epochs": 4, "checkpoint_every": every, "batch_size": 512}
    a = Trainer(cfg, tmp_path / "a", train=TRAIN, val=VAL)
    a.fit()
    b = Trainer(cfg, tmp_path / "b", train=TRAIN, val=VAL)
    assert len(b.fit(stop_after=stop)) == stop
    assert len(read_history(tmp_path / "b")) == stop
    assert not (tmp_path / "b" / "done").exists()
    b2 = Trainer(cfg, tmp_path / "b", train=TRAIN, val=VAL)
    if stop < every:  # no checkpoint yet: nothing to resume, so start over
        with pytest.raises(RunError, match="no checkpoint to resume from"):
            b2.fit(resume=True)
        resumed = b2.fit()
    else:
        resumed = b2.fit(resume=True)
    assert [r["epoch"] for r in resumed] == list(range(stop // every * every + 1, 5))
    assert b2.epoch == 4 and (tmp_path / "b" / "done").is_file()
    for name in ("lifter", "disc"):
        sa, sb = getattr(a, name).state_dict(), getattr(b2, name).state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), (name, key)
    ha, hb = read_history(tmp_path / "a"), read_history(tmp_path / "b")
    assert [r["epoch"] for r in hb] == [1, 2, 3, 4]
    assert without_time(ha) == without_time(hb)


def test_resume_without_checkpoint_is_an_error(tmp_path):
    tr, cfg = run(tmp_path, epochs=1)
    with pytest.raises(RunError, match="checkpoint.pt: no checkpoint to resume from"):
        tr.fit(resume=True)
    assert not (tmp_path / "run" / "history.jsonl").exists()


@pytest.mark.parametrize(("keys", "message"), [
    ({"train_size": 1}, "train_size 1: 1 training pose, and BatchNorm cannot train on a batch "
                        "of one; use train_size 2 or more"),
    ({"batch_size": 1, "mode": "supervised"}, "batch_size 1: BatchNorm cannot train on a batch "
                                               "of one pose; use batch_size 2 or more"),
])
def test_batches_of_one_pose_are_refused_in_one_line(tmp_path, keys, message):
    """BatchNorm cannot train on one pose: a clear error instead of torch's traceback."""
    with pytest.raises(ConfigError, match=f"^{message}$"):
        Trainer({**TINY, **keys}, tmp_path / "run", train=TRAIN, val=VAL)
    assert len(Trainer({**TINY, "train_size": 2}, tmp_path / "two", train=TRAIN,
                       val=VAL).fit()) == 2  # two poses: one batch of two per epoch


def test_a_run_in_the_way_is_never_replaced_without_force(tmp_path):
    tr, cfg = run(tmp_path, epochs=1)
    tr.fit()
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    again, _ = run(tmp_path, epochs=1)
    with pytest.raises(RunError, match="holds a finished run; --resume .* --force"):
        again.fit()
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    assert (tmp_path / "run" / "done").is_file()
    assert len(again.fit(force=True)) == 1


def test_a_torn_history_line_is_dropped_on_resume(tmp_path):
    tr, _ = run(tmp_path, epochs=3, checkpoint_every=1)
    tr.fit(stop_after=2)
    hist = tmp_path / "run" / "history.jsonl"
    hist.write_text(hist.read_text() + '{"loss": 0.1, "ep')  # a crash mid-line
    again, _ = run(tmp_path, epochs=3, checkpoint_every=1)
    with pytest.warns(UserWarning, match="line 3: torn"):
        again.fit(resume=True)
    assert [r["epoch"] for r in read_history(tmp_path / "run")] == [1, 2, 3]


def test_same_seed_same_numbers_other_seed_differs(tmp_path):
    h = [run(tmp_path, f"r{i}", seed=s)[0].fit() for i, s in enumerate((7, 7, 8))]
    assert without_time(h[0]) == without_time(h[1])
    assert h[0][0]["loss"] != h[2][0]["loss"]


@pytest.mark.parametrize("mode", ["vae_gan", "vae", "det_gan", "supervised"])
def test_each_mode_runs_and_writes_its_run_folder(tmp_path, mode):
    tr, cfg = run(tmp_path, mode=mode, epochs=1, p_miss=0.2, lambda_hinge=0.1)
    rows = tr.fit()
    out = tmp_path / "run"
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "config.yaml", "done", "history.jsonl"]
    hist = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert hist == json.loads(json.dumps(rows)) and len(hist) == 1
    assert set(hist[0]) == HISTORY_KEYS
    row = hist[0]
    assert row["epoch"] == 1 and row["poses"] == 2048 and row["lr"] == 1e-3
    assert len(row["val_hist"]) == 60 and sum(row["val_hist"]) == len(VAL["pose3d"])
    assert 0 < row["val_pa_mpjpe"] and row["val_pa_mpjpe_reflect"] <= row["val_pa_mpjpe"] + 1e-6
    has_disc = mode in ("vae_gan", "det_gan")
    assert (row["adv"] > 0) == has_disc and (row["d_loss"] > 0) == has_disc
    assert (row["kld"] > 0) == (mode in ("vae_gan", "vae"))
    assert (row["hinge"] != 0) == (mode != "supervised")
    assert (row["proj"] > 0) == (mode != "supervised")
    assert yaml.safe_load((out / "config.yaml").read_text()) == make_config(cfg)
    assert (out / "done").read_text().strip() == "1"
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 1 and (ckpt["disc"] is None) != has_disc


def test_load_run_and_is_finished(tmp_path):
    tr, cfg = run(tmp_path, epochs=1)
    out = tmp_path / "run"
    assert not is_finished(out, cfg)
    tr.fit()
    assert is_finished(out, cfg)
    assert not is_finished(out, {**cfg, "lr": 2e-3})
    assert not is_finished(out, {**cfg, "epochs": 2})
    assert not is_finished(tmp_path / "elsewhere", cfg)
    lifter, norm, saved = load_run(out, device="cpu")
    assert not lifter.training and not any(m.training for m in lifter.modules())
    assert saved == make_config(cfg) and norm == tr.norm
    with torch.no_grad():
        pred = lifter(tr.val_x, sample=False)[0]
    torch.testing.assert_close(norm.to_mm(pred), tr.predict(tr.val_x))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_run(tmp_path / "elsewhere")
    # a finished run resumed does nothing more
    again = Trainer(cfg, out, train=TRAIN, val=VAL)
    assert again.fit(resume=True) == [] and again.epoch == 1


def test_bad_parameters_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['widht'\]; valid keys: .*"
                                          r"'width'"):
        make_config({"widht": 64})
    with pytest.raises(ConfigError, match="unknown parameter"):
        make_config({}, {"epoch": 3})
    for key, value in (("batch_size", -1), ("epochs", 0), ("width", 2.5), ("latent", "8")):
        with pytest.raises(ConfigError, match=f"{key} must be a (positive integer|whole number)"):
            make_config({key: value})
    with pytest.raises(ConfigError, match="mode must be one of"):
        make_config({"mode": "gan"})
    with pytest.raises(ConfigError, match="p_miss and flip_p"):
        make_config({"p_miss": 1.5})
    with pytest.raises(ConfigError, match="lr must be positive"):
        make_config({"lr": 0})
    with pytest.raises(ConfigError, match="unknown parameter"):
        Trainer({"nope": 1}, tmp_path, train=TRAIN, val=VAL)
    assert make_config() == DEFAULTS and make_config() is not DEFAULTS
    assert parse_overrides(["lr=0.001", "source=null", "bf16=true", "mode=vae"]) == {
        "lr": 1e-3, "source": None, "bf16": True, "mode": "vae"}
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["lr"])
    # YAML reads 1e-3 (no dot) as a string: numeric parameters accept it
    assert parse_overrides(["lr=1e-3"]) == {"lr": "1e-3"}
    cfg = make_config({"lr": "2e-4"}, parse_overrides(["lambda_kld=1e-3"]))
    assert cfg["lr"] == 2e-4 and cfg["lambda_kld"] == 1e-3
    with pytest.raises(ConfigError, match="lr must be a number, got 'fast'"):
        make_config({"lr": "fast"})


@pytest.mark.parametrize("key, value, message", [
    ("lr", float("nan"), "lr must be a finite number, got nan"),
    ("lambda_kld", float("inf"), "lambda_kld must be a finite number"),
    ("dropout", 5, r"dropout is a probability in \[0, 1\), got 5"),
    ("disc_dropout", -0.1, "disc_dropout is a probability"),
    ("train_size", -5, "train_size must be a positive integer or null"),
    ("train_size", 2.5, "train_size must be a positive integer or null"),
    ("seed", "abc", "seed must be a whole number >= 0, got 'abc'"),
    ("seed", -1, "seed must be a whole number >= 0"),
    ("frame_step", 0, "frame_step must be a positive integer, got 0"),
    ("epochs", True, "epochs must be a whole number, got True"),
    ("bf16", 1, "bf16 must be true, false or 'auto', got 1"),
    ("lambda_hinge", -1, "lambda_hinge must not be negative"),
])
def test_ill_typed_or_out_of_range_values(key, value, message):
    with pytest.raises(ConfigError, match=message):
        make_config({key: value})


def test_param_files(tmp_path):
    for name in ("quick", "default", "thesis", "h36m"):
        make_config(load_params(REPO / "params" / f"{name}.yaml"))  # all valid
    with pytest.raises(ConfigError, match="nope.yaml: parameter file not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("width: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_params(tmp_path / "bad.yaml")
    (tmp_path / "sci.yaml").write_text("lr: 2e-4\nepochs: 3\n")
    assert make_config(load_params(tmp_path / "sci.yaml"))["lr"] == 2e-4
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        load_params(tmp_path / "list.yaml")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(128, 256)))
    with pytest.raises(ConfigError, match="binary.yaml: not a text file"):
        load_params(tmp_path / "binary.yaml")


def test_cli_errors_exit_with_a_message(tmp_path, monkeypatch):
    monkeypatch.delenv("HPE_DATA", raising=False)
    argv = ["--params", str(REPO / "params" / "quick.yaml"), "--out", str(tmp_path / "run"),
            "cache=/nonexistent", "source=/nonexistent"]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert isinstance(e.value.code, str)  # exit status 1, the message on stderr
    assert e.value.code.startswith("error: ") and "/nonexistent" in e.value.code
    assert "not found" in e.value.code
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit) as e:
        main(["--params", str(tmp_path / "missing.yaml")])
    assert e.value.code == f"error: {tmp_path / 'missing.yaml'}: parameter file not found"
    with pytest.raises(SystemExit) as e:
        main(["--params", str(REPO / "params" / "quick.yaml"), "bogus=1"])
    assert "unknown parameter(s) ['bogus']" in e.value.code


def test_cli_refuses_to_replace_a_run(tmp_path, monkeypatch):
    import lib.train

    monkeypatch.setattr(lib.train.D, "load", lambda cfg, split, progress=False:
                        TRAIN if split == "train" else VAL)
    argv = ["--out", str(tmp_path / "run"), *(f"{k}={v}" for k, v in TINY.items()), "epochs=1"]
    main(argv)
    with pytest.raises(SystemExit, match="error: .*run: holds a finished run"):
        main(argv)
    with pytest.raises(SystemExit, match="error: .*nothing/checkpoint.pt: no checkpoint"):
        main([*argv[:1], str(tmp_path / "nothing"), *argv[2:], "--resume"])
    main([*argv, "--force"])


def test_fresh_run_leaves_nothing_of_an_older_run_to_resume(tmp_path):
    """A new configuration trained into an old run folder must not later 'resume' from the
    old run's checkpoint (it used to survive until the new run's first checkpoint)."""
    old, _ = run(tmp_path, epochs=2, checkpoint_every=1)
    old.fit()
    folder = tmp_path / "run"
    (folder / "candidates").mkdir()
    made = ["eval-test.json", "realism-up.json", "selected.pt", "selection.json",
            "candidates/epoch-0009.pt"]  # an old run's choice among epochs and results
    for name in made:
        (folder / name).write_text("{}")
    new, _ = run(tmp_path, epochs=4, checkpoint_every=4, lr=5e-4)
    new.fit(stop_after=1, force=True)  # interrupted before its first checkpoint
    assert not (folder / "checkpoint.pt").exists()
    assert [name for name in made if (folder / name).exists()] == []
    again, _ = run(tmp_path, epochs=4, checkpoint_every=4, lr=5e-4)
    again.fit()  # nothing to resume and nothing in the way: starts at epoch 0
    assert [r["epoch"] for r in read_history(tmp_path / "run")] == [1, 2, 3, 4]


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    first, _ = run(tmp_path, epochs=2, checkpoint_every=1)
    first.fit()
    other, _ = run(tmp_path, epochs=3, lr=5e-4)
    with pytest.raises(ConfigError, match="lr"):
        other.load(tmp_path / "run" / "checkpoint.pt")
    longer, _ = run(tmp_path, epochs=3)  # more epochs is a runtime change: allowed
    longer.load(tmp_path / "run" / "checkpoint.pt")
    assert longer.epoch == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["vae_gan", "supervised"])
def test_cuda_epoch_never_waits_for_the_host(tmp_path, mode):
    """Inside an epoch no operation may synchronise the GPU with the host."""
    tr, _ = run(tmp_path, mode=mode, device="cuda", p_miss=0.5, lambda_hinge=1.0)
    tr.train_epoch()  # warm-up: first-use copies of constants are allowed
    beta = torch.tensor(1e-3, device="cuda")
    idx = torch.arange(64, device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            x, y = tr.x[idx], tr.y[idx]
            if mode == "supervised":
                x, y = random_flip_pair(x, y, tr.cfg["flip_p"], tr.gen)
            tr.step(x, y, beta)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_resume_from_a_torn_checkpoint_is_a_clear_error(tmp_path):
    tr, _ = run(tmp_path, epochs=2, checkpoint_every=1)
    tr.fit(stop_after=1)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    again, _ = run(tmp_path, epochs=2, checkpoint_every=1)
    with pytest.raises(RunError, match="checkpoint.pt: unreadable checkpoint .* --force"):
        again.fit(resume=True)
