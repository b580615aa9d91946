"""The layout: one table of models, imports that run one way, small modules.

``snapshots/layout.json`` records every model's full configuration, run folder, restart
seeds, label and evaluation cache file, for every profile and seeds 0-2, and the roles the
book gives them. It was first written by the code before the models moved into ``lib.zoo``
(main at 75352da), which the table reproduced exactly (the move changed no result); it was
written again when the lever study changed ours and when the vertical study did
(``python tests/test_layout.py --write``),
so that any later change to a model shows here and is made on purpose.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from lib import experiment, zoo
from lib.config import DEFAULTS

LIB = Path(__file__).resolve().parent.parent / "lib"
SNAPSHOT = Path(__file__).parent / "snapshots" / "layout.json"
PROFILES = ("quick", "default", "thesis", "h36m")
SPLIT = "test_unseen_styles"


def snapshot(runs: Path, known=None) -> dict:
    """What ``snapshots/layout.json`` records, computed by the code as it is now (configs
    as their differences from the defaults), of the models ``known`` (default: every row
    but the parent-only ones). Rows added since are left out: the snapshot proves that the
    move changed none of the models it knew."""
    from lib.config import load_params, make_config
    from lib.study import SELECT_BUDGET

    def diff(cfg):
        return {k: v for k, v in json.loads(json.dumps(cfg)).items() if DEFAULTS[k] != v}

    def rel(path):
        return "runs/" + str(path.relative_to(runs))

    old = known or [m for m in zoo.MODELS if zoo.get(m).role != "base"]

    def only(names):
        return [m for m in names if m in old]

    models = {}
    for profile in PROFILES:
        for model in old:
            for seed in range(3):
                cfg = experiment.model_config(profile, model, seed)
                models[f"{profile}/{model}/{seed}"] = {
                    "config": diff(cfg),
                    "run_dir": rel(experiment.run_dir(profile, model, seed)),
                    "kept_dir": rel(experiment.kept_dir(profile, model, seed)),
                    "restart_seeds": experiment.restart_seeds(profile, model, seed),
                    "label": zoo.get(model).label,
                    "eval_cache": experiment.eval_cache_name(cfg, SPLIT)}
    select = {p: {n: diff(make_config(load_params(experiment.params_path(p)),
                                      {**zoo.candidate_overrides(n), **SELECT_BUDGET}))
                  for n in zoo.CANDIDATES} for p in PROFILES}
    roles = {"book_models": zoo.book_models(), "tried": zoo.names("tried"),
             "seed_models": zoo.seed_models(), "ablation": zoo.ablation(),
             "evaluates": {v: zoo.trained(v) for v in only(zoo.variants())},
             "own_checks": only(m for m in zoo.MODELS if zoo.get(m).own_checks),
             "both_axes": only(m for m in zoo.MODELS if zoo.get(m).both_axes),
             "seed_plan_1": zoo.seed_plan(1), "seed_plan_3": zoo.seed_plan(3)}
    return {"defaults": json.loads(json.dumps(DEFAULTS)), "roles": roles, "select": select,
            "models": models}


def test_the_model_table_reproduces_the_snapshot(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "RUNS", tmp_path)  # no recorded spares: the plan alone
    want = json.loads(SNAPSHOT.read_text())
    got = snapshot(tmp_path, sorted({k.split("/")[1] for k in want["models"]}))
    # a parameter added since keeps the old behaviour by default (lib.runs.config_differences)
    assert {k: got["defaults"][k] for k in want["defaults"]} == want["defaults"]
    assert got["roles"] == want["roles"]
    assert got["select"] == want["select"]
    assert sorted(got["models"]) == sorted(want["models"])
    for key, entry in want["models"].items():
        assert got["models"][key] == entry, key


def test_add_a_model_through_the_table_alone(monkeypatch):
    """The README's recipe: one row, with a parent and a lever, is a model everywhere: its
    configuration, its label, its place in the ablation and in the build's plan."""
    row = zoo.Model("ours_nocycle", "Ours without the lift-again cycle", "ablation",
                    {"lambda_cycle": 0.0}, parent="ours_one",
                    lever="the lift-again cycle")
    monkeypatch.setattr(zoo, "TABLE", (*zoo.TABLE, row))
    monkeypatch.setattr(zoo, "MODELS", {**zoo.MODELS, row.name: row})
    cfg, parent = (experiment.model_config("quick", m) for m in ("ours_nocycle", "ours_one"))
    assert {k for k in cfg if cfg[k] != parent[k]} == {"lambda_cycle"}
    assert zoo.labels()["ours_nocycle"] == "Ours without the lift-again cycle"
    assert "ours_nocycle" in zoo.ablation() and "ours_nocycle" in zoo.book_models()
    assert ("ours_one", "ours_nocycle", "the lift-again cycle") in zoo.ablation_steps()
    assert zoo.seed_plan(3)["ours_nocycle"] == 1  # an ablation row: one seed
    assert experiment.run_dir("quick", "ours_nocycle").name == "ours_nocycle"


def test_a_variant_that_changes_training_is_refused(monkeypatch):
    """An evaluation-only variant that changed a key its cache file does not name would read
    its model's cached numbers: refused, with the keys named."""
    row = zoo.Model("ours_wide", "wider", "ablation", {"width": 512}, parent="ours",
                    evaluates="ours")
    monkeypatch.setattr(zoo, "MODELS", {**zoo.MODELS, row.name: row})
    with pytest.raises(ValueError, match=r"changes \['width'\]"):
        experiment.check_variant("quick", "ours_wide")
    for name in zoo.variants():  # the table's own variants pass
        experiment.check_variant("quick", name)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown model 'nope'; known: .*ours"):
        experiment.model_config("quick", "nope")


def imports() -> dict[str, set[str]]:
    """{module of lib: the modules of lib it imports, anywhere in it}."""
    graph = {}
    for path in LIB.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.update([node.module.split(".")[0]] if node.module
                            else (a.name for a in node.names))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lib"):
                deps.update([node.module.split(".")[1]] if "." in node.module
                            else (a.name for a in node.names))
        graph[path.stem] = deps - {path.stem}
    return graph


def test_no_import_cycle_in_lib():
    graph, done, path = imports(), set(), []

    def visit(module):
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):]
                                                                + [module]))
        if module in done:
            return
        path.append(module)
        for dep in graph.get(module, ()):
            visit(dep)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)
    assert graph["zoo"] <= {"config"}  # the table stands on the configuration alone
    assert graph["choose"] == set()  # pure functions


def test_each_module_imports_only_those_the_readme_lists_before_it():
    """The README's layout is the import order: a module of lib/ imports only modules named
    before it there, and every module is named."""
    import re

    readme = (LIB.parent / "README.md").read_text()
    block = readme[readme.index("## Layout"):readme.index("## Add a model")]
    block = block[block.index("lib/   "):block.index("book/   ")]  # the lib/ lines alone
    order = re.findall(r"\b(\w+)\.py\b", block)
    assert sorted(order) == sorted(p.stem for p in LIB.glob("*.py") if p.stem != "__init__")
    rank = {m: i for i, m in enumerate(order)}
    for module, deps in imports().items():
        if module == "__init__":
            continue
        later = sorted(d for d in deps if rank[d] > rank[module])
        assert not later, f"lib/{module}.py imports {later}, listed after it in the README"


def test_no_module_of_lib_is_over_450_lines():
    long = {p.name: n for p in LIB.glob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert not long, f"split these modules: {long}"


def test_a_new_loss_term_is_one_entry_of_the_objective(tmp_path, monkeypatch):
    """README's recipe for a loss term: an entry of lib.losses.OBJECTIVE and its weight in
    lib.config.DEFAULTS, nothing else: the trainer sums it and the history names it."""
    from test_train import TINY, TRAIN, VAL

    from lib import config, losses
    from lib.train import Trainer

    spread = ("lambda_spread", lambda b, cfg: b.pose3d.pow(2).mean())  # any term of a batch
    monkeypatch.setitem(losses.OBJECTIVE, "spread", spread)
    monkeypatch.setitem(config.DEFAULTS, "lambda_spread", 0.0)
    tr = Trainer({**TINY, "epochs": 1, "lambda_spread": 5.0}, tmp_path / "r", train=TRAIN,
                 val=VAL)
    row = tr.fit()[0]
    assert "spread" in tr.stats() and row["spread"] > 0  # a column of the history
    # the objective weighs it and adds it to the other terms
    batch = losses.Lifted(tr.x[:64], torch.randn(64, 48), torch.zeros(64, 51))
    beta = torch.tensor(0.0)
    with_it = losses.objective(batch, {**tr.cfg, "lambda_spread": 5.0}, beta)
    without = losses.objective(batch, {**tr.cfg, "lambda_spread": 0.0}, beta)
    torch.testing.assert_close(with_it["loss"] - without["loss"], 5.0 * with_it["spread"])


if __name__ == "__main__":  # python tests/test_layout.py --write: record the layout as it is
    import sys
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_layout.py --write")
    with tempfile.TemporaryDirectory() as tmp:
        experiment.RUNS = Path(tmp)  # no recorded spares: the plan alone
        snap = snapshot(Path(tmp))
    lines = [f" {json.dumps(k)}: {json.dumps(snap[k], sort_keys=True)}"
             for k in ("defaults", "roles", "select")]
    models = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}"
                         for k, v in sorted(snap["models"].items()))
    SNAPSHOT.write_text("{\n" + ",\n".join(lines) + ',\n "models": {\n' + models + "}}\n")
    print(f"wrote {SNAPSHOT}")
