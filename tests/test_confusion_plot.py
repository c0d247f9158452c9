"""The Vega confusion plot (.dvc/plots/confusion.json) shows every label, in id order, on both axes."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from conftest import ROOT
from textclf.reporting.plots import write_predictions_csv

# Not alphabetical, so id order and name order differ.
NAMES = ["sadness", "joy", "love", "anger", "fear", "surprise"]


def render(rows: list[dict]) -> str:
    """Fill the template as DVC does (anchors replaced, a rev column per row) and render it to SVG."""
    import vl_convert

    text = (ROOT / ".dvc/plots/confusion.json").read_text()
    text = text.replace('"<DVC_METRIC_DATA>"', json.dumps(rows)).replace("<DVC_METRIC_TITLE>", "confusion")
    text = text.replace("<DVC_METRIC_X>", "predicted").replace("<DVC_METRIC_Y>", "actual")
    assert "<DVC_" not in text, "an anchor the test does not fill"
    return vl_convert.vegalite_to_svg(json.loads(text))


def tick_labels(svg: str) -> list[str]:
    return [t for t in re.findall(r"<text[^>]*>([^<]+)</text>", svg) if t in NAMES]


def test_every_label_in_id_order_even_one_never_predicted(tmp_path):
    y_true = np.array([0, 1, 2, 3, 4, 5, 1, 1])
    y_pred = np.array([0, 1, 1, 3, 4, 1, 1, 0])  # love (2) and surprise (5) are never predicted
    path = tmp_path / "confusion.csv"
    write_predictions_csv(path, y_true, y_pred, NAMES)
    rows = pd.read_csv(path).astype(str).assign(rev="workspace").to_dict("records")
    labels = tick_labels(render(rows))
    # rendered: the x axis' six labels, then the y axis' six, each in id order
    assert labels == NAMES + NAMES, labels


def test_two_revisions_share_one_order(tmp_path):
    rows = []
    for rev, y_pred in (("main", [0, 1, 2, 3, 4, 5]), ("workspace", [1, 1, 1, 1, 1, 1])):
        path = tmp_path / f"{rev}.csv"
        write_predictions_csv(path, np.arange(6), np.array(y_pred), NAMES)
        rows += pd.read_csv(path).astype(str).assign(rev=rev).to_dict("records")
    labels = tick_labels(render(rows))
    # two x axes (one per revision panel) and the shared y axis, each all six labels in id order
    assert len(labels) == 18 and all(labels[i : i + 6] == NAMES for i in range(0, 18, 6)), labels


def test_pair_counts_draw_what_one_row_per_prediction_draws(tmp_path):
    """The CSV holds one row per label pair (at most n_labels squared, whatever the rows) and renders the same cells,
    counts and shares as one weight-1 row per prediction (the template sums the weights)."""
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 6, 500), rng.integers(0, 5, 500)  # surprise (5) never predicted
    path = tmp_path / "confusion.csv"
    write_predictions_csv(path, y_true, y_pred, NAMES)
    pairs = pd.read_csv(path)
    assert len(pairs) <= 36 and pairs["weight"].sum() == 500
    per_row = [
        {"actual": NAMES[a], "predicted": NAMES[p], "actual_id": a, "predicted_id": p, "weight": 1}
        for a, p in zip(y_true.tolist(), y_pred.tolist(), strict=True)
    ]
    per_row += [
        {"actual": n, "predicted": n, "actual_id": i, "predicted_id": i, "weight": 0} for i, n in enumerate(NAMES)
    ]
    as_rows = pd.DataFrame(per_row).astype(str).assign(rev="workspace").to_dict("records")
    drawn = [render(rows) for rows in (pairs.astype(str).assign(rev="workspace").to_dict("records"), as_rows)]
    cells = [sorted(re.findall(r'aria-label="(predicted: [^"]+)"', svg)) for svg in drawn]  # each cell's counts
    assert len(cells[0]) == 2 * len(pairs) and cells[0] == cells[1]  # a rect and a text mark a cell
    assert tick_labels(drawn[0]) == tick_labels(drawn[1]) == NAMES + NAMES
