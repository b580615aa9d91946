"""Computed sentences (lib/report.py) on made-up study results, including a losing model."""

import numpy as np
import pytest

from lib.report import ablation, mean_std, rig_context, rig_targets, summary, targets


def entry(*values):
    mean = sum(values) / len(values)
    if len(values) < 2:
        return {"mean": mean, "std": 0.0, "values": list(values)}
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return {"mean": mean, "std": std, "values": list(values)}


def study(ours_pa, thesis_pa, mirrored=1.0):
    split = "test_unseen_styles"
    metrics = lambda pa: {"pa_mpjpe": entry(*pa), "mirrored_rate": entry(*[mirrored] * len(pa))}  # noqa: E731
    return {"seeds": list(range(len(ours_pa))), "splits": [split],
            "models": {"ours": {split: metrics(ours_pa)}, "vae_gan": {split: metrics(thesis_pa)}},
            "baselines": {"flat": {split: {"pa_mpjpe": 66.0}}}}


def test_mean_std_formats_one_and_many_seeds():
    assert mean_std(entry(50.0, 52.0, 54.0)) == "52.0 ± 2.0"
    assert mean_std(entry(51.25)) == "51.2" or mean_std(entry(51.25)) == "51.3"


def test_summary_says_better_when_the_model_wins():
    text = summary(study([50.0, 52.0, 54.0], [70.0] * 3), "ours", "ours", "vae_gan", "the thesis")
    assert "52.0 ± 2.0 mm, better than the flat baseline's 66.0 mm (ratio 0.79)" in text
    assert "18.0 mm below the thesis (70.0 mm)" in text
    assert text.startswith("Over 3 seeds")


def test_summary_says_worse_when_the_thesis_model_loses():
    text = summary(study([50.0] * 3, [78.0, 79.0, 80.0]), "vae_gan", "the thesis's VAE-GAN",
                   "ours", "ours")
    assert "79.0 ± 1.0 mm, worse than the flat baseline's 66.0 mm (ratio 1.20)" in text
    assert "29.0 mm above ours" in text


def test_targets_met_and_not_met():
    good = {r["target"].split()[0]: r["met"]
            for r in targets(study([52.0, 52.5, 53.0], [70.0] * 3))}
    assert good == {"PA-MPJPE": True, "std": True, "mirrored": True}
    bad = {r["target"].split()[0]: r["met"]
           for r in targets(study([50.0, 56.0, 62.0], [70.0] * 3, mirrored=9.0))}
    assert bad == {"PA-MPJPE": False, "std": False, "mirrored": False}
    one_seed = {r["target"].split()[0]: r["met"] for r in targets(study([50.0], [70.0]))}
    assert one_seed["std"] is False  # a spread needs seeds
    edge = [r for r in targets(study([40.4, 36.4, 38.7], [70.0] * 3)) if "std" in r["target"]]
    assert edge[0]["measured"] == "2.01 mm over 3 seeds" and not edge[0]["met"]  # not "2.0"


def test_diagnosis_names_the_failing_part():
    import torch

    from lib.prose import diagnosis

    def errs(image, depth):
        return {"image": torch.tensor([0.0] + [image] * 16),
                "depth": torch.tensor([0.0] + [depth] * 16)}

    splits = {"T": errs(30.0, 40.0), "O": errs(0.0, 25.0), "F": errs(0.0, 45.0)}
    text = diagnosis(splits, {"T": 0.3, "O": 0.8}, {"mean code": 70.0, "one sampled code": 77.0},
                     -0.6, thesis="T", ours="O", flat="F")
    assert "T gains 5.0 mm in depth over the flat guess but loses 30.0 mm in the image" in text
    assert "0.30 for T and 0.80 for O (higher for ours)" in text
    assert "77.0 mm instead of 70.0 mm (+10%)" in text
    assert "works against depth" in text
    worse = diagnosis({**splits, "T": errs(0.0, 50.0)}, {"T": 0.1, "O": 0.0},
                      {"mean code": 70.0, "one sampled code": 70.0}, float("nan"),
                      thesis="T", ours="O", flat="F")
    assert "5.0 mm *worse* than predicting no depth" in worse
    assert "(not higher for ours)" in worse and "constant over this profile" in worse


def test_legible_enlarges_text_of_wide_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lib.plots import MIN_PT, PAGE_WIDTH_IN, curves, legible

    fig, ax = plt.subplots(figsize=(2 * PAGE_WIDTH_IN, 3))
    curves([{"epoch": 1, "d_real": 0.5}, {"epoch": 2, "d_real": 0.6}], ["d_real"], ax,
           ylabel="probability")
    ax.set_title("t", fontsize=6)
    legible(fig)
    shown = [t.get_fontsize() * PAGE_WIDTH_IN / fig.get_figwidth()
             for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    shown += [lab.get_fontsize() * PAGE_WIDTH_IN / fig.get_figwidth()
              for lab in ax.get_xticklabels()]
    assert min(shown) >= MIN_PT - 1e-6
    assert ax.get_legend().get_texts()[0].get_text() == "D(x): real 2D poses"  # words
    plt.close(fig)


def test_ablation_sentence_follows_the_numbers():
    from lib.report import ablation

    def entry(*values):
        import statistics
        return {"mean": statistics.fmean(values), "std": statistics.stdev(values),
                "values": list(values)}

    study = {"seeds": [0, 1, 2], "splits": ["test_unseen_styles"],
             "models": {"a": {"test_unseen_styles": {"pa_mpjpe": entry(48, 46, 64),
                                                     "mirrored_rate": entry(0, 0, 13)}},
                        "b": {"test_unseen_styles": {"pa_mpjpe": entry(47, 46, 48),
                                                     "mirrored_rate": entry(0, 0, 1)}}},
             "backward_knees": {"a": entry(0, 0, 17.2), "b": entry(0, 0, 0)}}
    text = ablation(study, "b", "a", "the prior")
    assert "it lowers the PA-MPJPE from 52.7 ± 9.9 to 47.0 ± 1.0 mm" in text
    assert "4.3% -> 0.3%" in text and "0.0, 0.0, 17.2 -> 0.0, 0.0, 0.0" in text
    assert "raises" in ablation(study, "a", "b", "removing it")
    both = {**study, "critic_accuracy": {"a": entry(88, 86, 87), "b": entry(83, 82, 84)},
            "critic_accuracy_camera": {"a": entry(88, 87, 89), "b": entry(91, 90, 92)}}
    text = ablation(both, "b", "a", "the axis")
    assert "critic accuracy goes from 87.0 ± 1.0% to 83.0 ± 1.0%" in text
    assert "about the camera's vertical instead (its first version), it goes from 88.0 ± 1.0% " \
           "to 91.0 ± 1.0%" in text


def test_seed_checks_say_whether_2d_ranks_like_3d():
    from lib.report import seed_checks

    def entry(*v):
        return {"mean": sum(v) / len(v), "std": 0.0, "values": list(v)}

    study = {"seeds": [0, 1, 2], "splits": ["test_unseen_styles"],
             "models": {"m": {"test_unseen_styles": {"pa_mpjpe": entry(44.3, 47.0, 57.6)}}},
             "critic_accuracy": {"m": entry(84.7, 88.0, 94.6)}}
    text = seed_checks(study, "m", "ours")
    assert "seed 2: 94.6% / 57.6 mm" in text and "in the same order" in text
    study["critic_accuracy"]["m"] = entry(90.0, 88.0, 94.6)
    assert "in another order" in seed_checks(study, "m", "ours")
    assert seed_checks({**study, "critic_accuracy": {}}, "m", "ours") == ""


def test_best_hypothesis_states_the_oracle_gain_and_the_one_sample_cost():
    from lib.prose import best_hypothesis

    curves = {("test_unseen_styles", "VAE-GAN"): {1: 80.0, 5: 70.0, 10: 60.0, "mean code": 75.0},
              ("test_unseen_motions", "VAE-GAN"): {1: 70.0, 5: 72.0, 10: 78.0, "mean code": 75.0}}
    text = best_hypothesis(curves, k=10)
    assert ("best of 10 samples errs by 60.0 mm, 20% below the mean-code prediction (75.0 mm)"
            in text)
    assert "one random sample errs by 80.0 mm, worse than the mean code" in text
    # an oracle that does worse than the mean code (made up) is said so, not hidden
    assert "78.0 mm, 4% above the mean-code prediction" in text
    assert "one random sample errs by 70.0 mm, no worse than the mean code" in text
    assert "changes the error by -20% to +4% against the single prediction" in text
    assert "The samples do cover poses nearer the truth" in text
    worse = {("s", "m"): {1: 80.0, 10: 78.0, "mean code": 75.0}}  # the oracle never helps
    assert "Even the oracle's choice is no better" in best_hypothesis(worse, k=10)


def test_missing_joints_says_whether_training_with_them_helps():
    from lib.prose import missing_joints

    tab = {("test_unseen_styles", "base"): {0: 60.0, 1: 80.0, 2: 100.0},
           ("test_unseen_styles", "trained"): {0: 62.0, 1: 70.0, 2: 75.0}}
    text = missing_joints(tab, "base", "trained")
    assert "base goes from 60.0 to 100.0 mm (+67%), trained from 62.0 to 75.0 mm (+21%)" in text
    assert "lowers the error on such inputs (-25.0 mm) and costs 2.0 mm on complete ones" in text
    tab["test_unseen_styles", "trained"] = {0: 59.5, 1: 70.0, 2: 75.0}
    assert "saves 0.5 mm on complete ones" in missing_joints(tab, "base", "trained")
    tab["test_unseen_styles", "trained"] = {0: 62.0, 1: 90.0, 2: 110.0}
    text = missing_joints(tab, "base", "trained")
    assert "does not lower the error on such inputs (+10.0 mm)" in text


def test_mirror_checks_each_target_and_reports_a_miss():
    from lib.prose import mirror

    row = lambda m, g, r: {"mirrored (%)": m, "gap (%)": g, "PA-MPJPE refl. (mm)": r}  # noqa: E731
    rates = {("thesis", "s"): row(30.0, 40.0, 60.0), ("aware", "s"): row(2.0, 12.0, 61.0)}
    text = mirror(rates, "thesis", "aware", ["s"])
    assert "mirrored poses 30.0% -> 2.0% (target at most 5%: met)" in text
    assert "40.0% -> 12.0% (target at most 10%: not met)" in text
    assert "60.0 -> 61.0 mm (worse)" in text


def test_training_summary_compares_the_spread_of_the_two_runs():
    from lib.prose import training

    text = training("VAE-GAN", [60.0, 70.0], [50.0, 50.2], 12.34, 3_000_000, 100_000_000)
    assert "VAE-GAN is 65.0 ± 5.0 mm, that of ours 50.1 ± 0.1 mm: ours is steadier" in text
    assert "took 12.3 s here" in text and "3.0 million poses, 3% of the 100 million" in text
    assert "not steadier" in training("VAE-GAN", [60.0, 60.0], [50.0, 52.0], 1, 1, 1)


def test_verdict_lists_what_is_missed():
    from lib.report import verdict

    rows = [{"split": "a", "target": "t1", "measured": "1", "met": True},
            {"split": "b", "target": "t2", "measured": "2", "met": False}]
    assert verdict(rows) == "1 of the 2 targets are met; not met: t2 on b (2)."
    assert verdict(rows[:1]) == "1 of the 1 targets are met: every one."


def test_per_joint_and_per_action_rank_from_the_numbers():
    from lib.report import per_action, per_joint

    errs = {"pelvis": 9.0, "r_knee": 40.0, "r_ankle": 80.0, "l_wrist": 100.0, "thorax": 20.0}
    text = per_joint(errs, "ours", worst=2)
    assert "l_wrist (100.0 mm), r_ankle (80.0 mm)" in text
    assert "average 90.0 mm against 30.0 mm" in text and "3.0 times" in text
    tab = {("s", "ours"): {"walk": 50.0, "kick": 90.0},
           ("s", "thesis"): {"walk": 60.0, "kick": 80.0}}
    text = per_action(tab, "ours", "thesis")
    assert "errs most on kick (90.0 mm) and least on walk (50.0 mm)" in text
    assert "better than thesis on 1 of 2 actions" in text


def test_data_summary_totals_the_splits_and_names_the_worst_clipping():
    from lib.prose import data_summary

    text = data_summary({"train": 1000, "test_unseen_styles": 500},
                        {"train": 0.1, "test_unseen_styles": 2.5}, reach=1.3)
    assert "beyond the decoder's reach of 1.3" in text
    assert "1,500 2D/3D pose pairs (train 1,000, unseen styles 500)" in text
    assert "2.50% of a split's poses (unseen styles)" in text and "clips a noticeable share" in text


def test_latent_says_whether_the_code_adds_to_the_input():
    from lib.prose import latent

    text = latent("VAE-GAN", {"the action": (60.0, 50.0, 20.0)})
    assert ("10 nearest latent means (of other takes) in 60% of the test poses (from the 10 "
            "nearest 2D inputs: 50%; always guessing the most common: 20%)") in text
    assert "more than the 2D input does" in text
    text = latent("VAE-GAN", {"the action": (40.0, 50.0, 20.0)})
    assert "UMAP's clusters are mostly the input's" in text


def test_rig_target_is_the_ratio_to_flat():
    def three(styles, rig, flat_rig):
        m = lambda v: {"pa_mpjpe": entry(v, v), "mirrored_rate": entry(0.0, 0.0)}  # noqa: E731
        return {"seeds": [0, 1], "splits": ["test_unseen_styles", "test_unseen_rig"],
                "models": {"ours": {"test_unseen_styles": m(styles), "test_unseen_rig": m(rig)}},
                "baselines": {"flat": {"test_unseen_styles": {"pa_mpjpe": 66.0},
                                       "test_unseen_rig": {"pa_mpjpe": flat_rig}}}}

    rows = rig_targets(three(50.0, 57.0, 96.0))  # 0.59 x flat
    assert [r["met"] for r in rows] == [True] and "57.0 mm = 0.59 x 96.0" in rows[0]["measured"]
    # 1.70 x its own error on unseen styles: no longer a target, only the ratio to flat counts
    assert [r["met"] for r in rig_targets(three(46.0, 78.0, 96.0))] == [True]  # 0.81 x flat
    assert [r["met"] for r in rig_targets(three(46.0, 82.0, 96.0))] == [False]  # 0.854 x
    assert rig_targets(study([50.0], [70.0])) == []  # no rig split, no rows


def test_ablation_compares_on_the_seeds_both_models_have():
    s = study([40.0, 50.0, 90.0], [60.0, 70.0])  # "vae_gan" stands in for the ablated model
    text = ablation(s, "ours", "vae_gan", "the lever")
    assert text.startswith("Over 2 seeds (0, 1, the same for both), the lever")
    assert "lowers the PA-MPJPE from 65.0 ± 7.1 to 45.0 ± 7.1 mm" in text  # not ours' 60.0


def test_rig_context_compares_the_same_takes_on_two_bodies():
    m = lambda v: {"pa_mpjpe": entry(v, v)}  # noqa: E731
    s = {"seeds": [0, 1], "splits": ["test_unseen_styles", "test_unseen_rig"],
         "models": {"ours": {"test_unseen_styles": m(48.0), "test_unseen_rig": m(60.0)}},
         "baselines": {"flat": {"test_unseen_styles": {"pa_mpjpe": 66.0},
                                "test_unseen_rig": {"pa_mpjpe": 82.5}}}}
    text = rig_context(s)
    assert "takes of the unseen styles split" in text
    assert "from 48.0 mm (BNMD-17's body) to 60.0 mm (the other bodies), 1.25 times" in text
    assert "from 66.0 to 82.5 mm, 1.25 times" in text
    assert rig_context({**s, "splits": ["test_unseen_rig"]}) == ""
    assert "spreads" not in text  # a study without the depth spreads says nothing of them
    s["depth_spread"] = {"test_unseen_styles": 120.0, "test_unseen_rig": 150.0}
    assert ("spreads 1.25 times as far on the other bodies (150 mm standard deviation "
            "against 120 mm), and the error of ours is 0.73 of the flat baseline's on them "
            "against 0.73 on BNMD-17's body") in rig_context(s)


def test_depth_spread_is_the_root_relative_depths_standard_deviation():
    from lib.evaluate import depth_spread

    pose = np.zeros((2, 17, 3), dtype=np.float32)
    pose[:, :, 2] = 1000.0  # the root's own depth does not count
    pose[0, 1:, 2] += 30.0
    pose[1, 1:, 2] -= 30.0
    expected = np.std(np.r_[np.zeros(1), np.full(16, 30.0), np.zeros(1), np.full(16, -30.0)])
    assert depth_spread({"pose3d": pose}) == pytest.approx(expected)


def test_realism_check_says_which_axis_penalises_true_3d():
    from lib.report import realism_check

    study = {"critic_accuracy": {"ours": {"mean": 83.0, "std": 1.0, "values": [82.0, 84.0]}}}
    text = realism_check({"up": 77.3, "camera": 90.5}, study)
    assert "77.3% when the poses turn about the world's vertical" in text
    assert "90.5% when they turn about the camera's" in text and "tell of its own" in text
    assert "ours scores 83.0 ± 1.0% over 2 seeds, 5.7 points above" in text
    assert "cannot tell the axes apart" in realism_check({"up": 80.0, "camera": 83.0}, {})
    assert realism_check({"up": 80.0, "camera": 83.0}, {}).endswith("apart.")


def test_tilts_tabulate_each_training_and_name_those_tilted_away():
    from lib.report import tilted_away, tilts

    epoch = lambda tilt, acc=0.6: {"tilt_deg": tilt, "d_acc": acc}  # noqa: E731
    rows = tilts({"a": [epoch(-49.0), epoch(-38.0), epoch(-35.0), epoch(-43.04, 0.83)],
                  "b": [epoch(10.0), epoch(-25.0)]})
    assert rows[0] == {"training": "a", "tilt, epoch 1": -49.0, "tilt, epoch 2": -38.0,
                       "tilt, epoch 3": -35.0, "tilt, last epoch": -43.0,
                       "discriminator accuracy, last epoch (%)": 83.0}
    assert "tilt, epoch 3" not in rows[1] and rows[1]["tilt, last epoch"] == -25.0
    assert tilted_away(rows) == (
        "Trainings whose lifted world leaned away from the camera by more than 20 degrees over "
        "their first epoch: 1 of 2 (a); in their last epoch: 2 of 2 (a; b).")
    assert "first epoch: 0 of 2;" in tilted_away(rows, by=50)


def test_signed_differences_read_as_a_person_would_write_them():
    from lib.report import cost, signed

    assert signed(1.24) == "+1.2 mm"
    assert signed(-0.44) == "-0.4 mm"
    assert signed(-0.04) == signed(0.0) == "no difference"
    assert cost(-0.04) == cost(0.03) == "costs nothing"
    assert cost(2.06) == "costs 2.1 mm"
    assert cost(-3.0, "points") == "saves 3.0 points"
    assert "-0.0" not in cost(-0.01) + signed(-0.01)
    assert signed(-0.4, "%", 0) == "no difference" and signed(12.0, "%", 0) == "+12%"


def test_missing_joints_prose_never_says_minus_zero():
    from lib.prose import missing_joints

    tab = {("test_unseen_styles", "a"): {0: 50.0, 2: 60.0},
           ("test_unseen_styles", "b"): {0: 50.02, 2: 59.98}}
    text = missing_joints(tab, "a", "b")
    assert "-0" not in text and "costs nothing on complete ones" in text
    assert "(no difference)" in text and "(+20%)" in text
