"""The build's page checks on hand-made notebooks: every cell that plots shows a picture
(lib.book.missing_figures), and the code is folded for the page (lib.book.fold)."""

import json

import pytest

from lib import book, browser


def _nb(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _code(source, outputs=(), tags=()):
    return {"cell_type": "code", "id": "x", "source": source, "outputs": list(outputs),
            "metadata": {"tags": list(tags)}, "execution_count": 1}


PNG = {"output_type": "display_data", "data": {"image/png": "iVBORw0K", "text/plain": "<Figure>"},
       "metadata": {}}
TEXT = {"output_type": "execute_result", "data": {"text/plain": "(np.float64(-0.5), ...)"},
        "metadata": {}, "execution_count": 1}
PROSE = {"output_type": "execute_result", "data": {"text/markdown": "Ours is better.",
                                                   "text/plain": "<Markdown>"},
         "metadata": {}, "execution_count": 1}


def test_a_plotting_cell_with_its_picture_passes_and_fails_with_it_removed():
    draw = ["fig, ax = plt.subplots(figsize=(12, 4))\n", "ax.imshow(img)\n", "ax.axis('off')"]
    ok = _nb(_code(draw, [PNG, TEXT]), _code("x = 1  # plt.figure( in a comment"))
    assert book.missing_figures(ok) == []
    assert browser.figures(ok) == 1
    gone = _nb(_code(draw, [TEXT]), _code("x = 1"))
    assert book.missing_figures(gone) == ["cell 0: fig, ax = plt.subplots(figsize=(12, 4))"]
    assert browser.figures(gone) == 0


@pytest.mark.parametrize("source", ["skeleton_2d(axes[1], h36m)", "fig = plt.figure()",
                                    "ax = fig.add_subplot(1, 3, 1)", "curves(h, ['proj'], ax)",
                                    "overlay_3d(ax, gt, pred)", "animate_3d(path, panels)"])
def test_every_plotting_helper_counts_as_drawing(source):
    assert browser.draws(_code(source))


def test_fold_hides_plumbing_and_keeps_teaching_code():
    nb = _nb(_code('profile = "quick"', tags=["parameters"]),
             _code('profile = "default"', tags=["injected-parameters"]),
             _code("import numpy as np"),
             _code("Markdown(summary(study))", [PROSE]),
             _code("table", [TEXT]),
             _code("z = mu + sigma * eps", [TEXT], tags=["show-input"]))
    tags = [c["metadata"]["tags"] for c in book.fold(nb)["cells"]]
    assert tags == [["parameters", "remove-cell"], ["injected-parameters", "remove-cell"],
                    ["remove-cell"], ["remove-input"], ["hide-input"], ["show-input"]]


def test_finish_stops_the_build_on_a_missing_figure(tmp_path):
    path = tmp_path / "chapter.ipynb"
    path.write_text(json.dumps(_nb(_code("fig = plt.figure()", [TEXT]))))
    with pytest.raises(SystemExit, match="cell 0: fig = plt.figure()"):
        book.finish(path)
    path.write_text(json.dumps(_nb(_code("fig = plt.figure()", [PNG]), _code("import x"))))
    book.finish(path)
    assert json.loads(path.read_text())["cells"][1]["metadata"]["tags"] == ["remove-cell"]
