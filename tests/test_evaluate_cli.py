"""python -m lib.evaluate: every bad argument is one line naming what is wrong."""

import pytest
from test_train import TINY, TRAIN, VAL

from lib.evaluate import int_list, main
from lib.train import Trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    Trainer({**TINY, "epochs": 1}, out, train=TRAIN, val=VAL).fit()
    return out


@pytest.mark.parametrize(("args", "message"), [
    (["--k", "0"], r"--k: \[0\] out of range"),
    (["--k", "abc"], "--k takes comma-separated whole numbers, got 'abc'"),
    (["--k", "-3"], r"--k: \[-3\] out of range"),
    (["--missing", "-1"], r"--missing: \[-1\] out of range; use numbers from 0 to 8"),
    (["--missing", "99"], r"--missing: \[99\] out of range"),
    (["--size", "0"], "--size must be a positive number of poses, got 0"),
    (["--split", "nosuch"], "unknown BNMD-17 split 'nosuch'; choose one of .*test_unseen_styles"),
])
def test_bad_arguments(run, args, message):
    with pytest.raises(SystemExit, match=f"^error: {message}"):
        main(["--run", str(run), *args])


def test_missing_run_and_int_list():
    with pytest.raises(SystemExit, match="checkpoint.pt: no checkpoint"):
        main(["--run", "/nowhere"])
    assert int_list("1, 5,10", "--k", low=1) == (1, 5, 10)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04torn", b"not a checkpoint at all"])
def test_damaged_checkpoint_is_one_line(run, tmp_path, content):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "checkpoint.pt").write_bytes(content)
    with pytest.raises(SystemExit, match=r"^error: .*broken/checkpoint.pt: unreadable checkpoint"):
        main(["--run", str(broken), "--split", "test_unseen_styles"])


def test_a_first_restart_is_scored_as_the_model_its_record_names(run, tmp_path, capsys):
    """--run on the first of several restarts scores the model restarts.json names (as
    lib.lift lifts with it); --training scores the folder's own training."""
    import json
    import shutil

    first, second = tmp_path / "ours", tmp_path / "ours-seed100"
    shutil.copytree(run, first)
    shutil.copytree(run, second)
    (first / "restarts.json").write_text(json.dumps(
        {"chosen": "ours-seed100", "runs": ["ours", "ours-seed100"]}))
    args = ["--run", str(first), "--k", "1", "--missing", "0", "--size", "16", "--json"]
    main(args)
    out = capsys.readouterr()
    assert json.loads(out.out)["run"] == str(second)
    assert "the model of its restarts is" in out.err
    main([*args, "--training"])
    assert json.loads(capsys.readouterr().out)["run"] == str(first)
    (first / "restarts.json").write_text(json.dumps({"chosen": "gone", "runs": ["ours"]}))
    with pytest.raises(SystemExit, match="^error: .*restarts.json: names 'gone'"):
        main(args)
