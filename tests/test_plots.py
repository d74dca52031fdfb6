"""drugjax.evaluation.plots: Figure 5's four panels one size, every legend naming what it
plots (the judge of "dealer" among it), the precision-recall baseline labelled."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from drugjax.evaluation import plots


@pytest.fixture
def legends(monkeypatch):
    """The legend texts of every figure saved, in the order they were saved (each is
    written to a temporary file, then renamed: the file's name is not what savefig sees)."""
    seen = []
    save = Figure.savefig

    def spy(fig, path, *args, **kwargs):
        seen.append([t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()])
        return save(fig, path, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", spy)
    return seen


def test_figure5_panels_are_one_size_and_their_legends_name_the_expert(tmp_path, legends):
    rng = np.random.default_rng(0)
    dealer = np.arange(40) < 6
    paths = [
        plots.drug_share_histogram(tmp_path / "a.png", rng.uniform(size=40), dealer, "expert 1"),
        plots.drug_posts_by_hour(tmp_path / "b.png", rng.integers(0, 3, (40, 24)), dealer, "expert 1"),
        plots.following_ratio(tmp_path / "c.png", rng.integers(0, 500, 40), rng.integers(0, 5000, 40), dealer,
                              "expert 1"),
        plots.evidence_share(tmp_path / "d.png", (rng.uniform(size=40) < 0.3).astype(float), dealer, "expert 1"),
    ]
    assert {Image.open(p).size for p in paths} == {(660, 480)}
    assert legends == [["dealers, expert 1 (6)", "non-dealers, expert 1 (34)"]] * 4


def test_precision_recall_names_its_baseline(tmp_path, legends):
    labels = np.array([0, 0, 0, 1] * 10)
    scores = {"Late fusion": np.linspace(0, 1, 40)}
    plots.precision_recall_curves(tmp_path / "pr.png", labels, scores)
    [legend] = legends
    assert legend[0].startswith("Late fusion (AP ")
    assert legend[1] == "share of drug-related posts (0.25): a random scorer"
