"""UMAP reads at a glance: the PNG's label panels share axes and bins; the Vega template does not
force zero into its axes."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from conftest import ROOT
from textclf.reporting.plots import umap_figure

NAMES = ["sadness", "joy", "love", "anger", "fear", "surprise"]


def clusters(seed: int = 0) -> pd.DataFrame:
    """Six clusters far from the origin, each label in its own place."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(6), 30)
    xy = rng.normal(0, 10, (6, 2))[rows] + rng.normal(0, 0.5, (len(rows), 2)) + 100
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "label": np.asarray(NAMES)[rows]})


def test_png_panels_share_limits_and_each_cluster_keeps_its_place():
    points = clusters()
    fig = umap_figure(points, NAMES, "UMAP")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 6
    assert len({(ax.get_xlim(), ax.get_ylim()) for ax in panels}) == 1  # one set of limits for all
    for ax, name in zip(panels, NAMES, strict=True):
        hexbin = ax.collections[-1]  # the label's bins, drawn over the grey points of every row
        centres = hexbin.get_offsets()[np.asarray(hexbin.get_array()) > 0]
        own = points[points["label"] == name][["x", "y"]].to_numpy()
        # every bin of the panel lies at this label's cluster, in the shared coordinates
        assert np.abs(centres.mean(axis=0) - own.mean(axis=0)).max() < 3, name
    plt.close(fig)


def test_vega_template_scales_do_not_include_zero():
    import vl_convert

    rows = clusters().assign(rev="workspace").to_dict("records")
    text = (ROOT / ".dvc/plots/umap.json").read_text().replace('"<DVC_METRIC_DATA>"', json.dumps(rows))
    text = text.replace("<DVC_METRIC_TITLE>", "umap").replace("<DVC_METRIC_X>", "x").replace("<DVC_METRIC_Y>", "y")
    vega = vl_convert.vegalite_to_vega(json.loads(text))
    scales = {s["name"]: s for s in vega["scales"]}
    for axis in ("x", "y"):
        assert scales[axis]["zero"] is False, scales[axis]
