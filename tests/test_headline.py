"""The results chapter's headline: one compact table and one figure from a seed study."""

import matplotlib

matplotlib.use("Agg")

from lib import zoo  # noqa: E402
from lib.study import headline  # noqa: E402


def _entry(*values):
    from lib.report import aggregate

    return {"pa_mpjpe": aggregate(list(values))}


STUDY = {
    "seeds": [0, 1], "splits": ["test_unseen_styles", "test_unseen_motions"],
    "models": {"ours": {"test_unseen_styles": _entry(40.0, 42.0),
                        "test_unseen_motions": _entry(50.0, 50.0)},
               "vae_gan": {"test_unseen_styles": _entry(60.0, 64.0),
                           "test_unseen_motions": _entry(70.0, 70.0)},
               "supervised": {"test_unseen_styles": _entry(30.0, 30.0),
                              "test_unseen_motions": _entry(35.0, 35.0)}},
    "baselines": {"flat": {"test_unseen_styles": {"pa_mpjpe": 82.0},
                           "test_unseen_motions": {"pa_mpjpe": 100.0}}},
    "seeds_per_model": {"ours": 2, "vae_gan": 2, "supervised": 2},
    "train_seconds": {"ours": [600.0, 660.0], "vae_gan": [120.0, 120.0]},
    "restarts": {"ours": [{"runs": ["a", "b", "c"]}, {"runs": ["a", "b", "c", "d"]}]},
}


def test_headline_has_one_column_per_split_in_words_and_short_names():
    t = headline(STUDY, ["ours", "vae_gan", "supervised"], zoo.shorts())
    assert list(t.columns) == ["unseen styles", "unseen motions", "seeds", "trainings per seed",
                               "training (min)"]
    assert list(t.index) == ["ours", "thesis VAE-GAN", "supervised",
                             "flat (input 2D at constant depth)"]
    assert t.loc["ours", "unseen styles"] == "41.0 ± 1.4 (0.50)"
    assert t.loc["ours", "trainings per seed"] == "3–4"
    assert t.loc["ours", "training (min)"] == "10.5"
    assert t.loc["supervised", "training (min)"] == "–"
    assert t.loc["thesis VAE-GAN", "trainings per seed"] == "1"


def test_headline_figure_draws_every_model_and_the_references():
    import matplotlib.pyplot as plt

    from lib.plots import headline_figure

    fig, ax = plt.subplots()
    headline_figure(STUDY, ["ours", "vae_gan"], zoo.shorts(), ax=ax)
    labels = ax.get_legend_handles_labels()[1]
    assert sorted(labels) == ["flat (input 2D at constant depth)", "ours",
                              "supervised (3D labels)", "thesis VAE-GAN"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["unseen styles", "unseen motions"]
    plt.close(fig)


def test_every_book_model_has_a_short_name_and_the_legend_says_what_it_is():
    short = zoo.shorts(zoo.book_models())
    assert short["ours"] == "ours" and short["vae_gan"] == "thesis VAE-GAN"
    assert all(len(s) <= 30 for s in short.values())
    assert zoo.legend(["ours"]).startswith("- **ours**: Ours (depth lifter")
