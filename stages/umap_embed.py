"""Stage umap: 2-D UMAP of the train hidden states, as the notebook's figure and as plot data.

Reads params: umap.*
Writes: plots/umap/<encoder>.csv (x, y, label name) and plots/umap/<encoder>.png
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from textclf.errors import run_stage
from textclf.evaluation import save_umap_png
from textclf.io import atomic_path, read_json, read_npy, read_parquet
from textclf.params import UmapParams, load_params

log = logging.getLogger("stage.umap")


def embed_2d(X: np.ndarray, params: UmapParams) -> np.ndarray:
    """MinMaxScaler then UMAP(n_components=2, metric="cosine"), as in the notebook, seeded."""
    from sklearn.preprocessing import MinMaxScaler
    from umap import UMAP

    scaled = MinMaxScaler().fit_transform(X)
    mapper = UMAP(
        n_components=2, metric="cosine", n_neighbors=min(params.n_neighbors, len(X) - 1),
        min_dist=params.min_dist, random_state=params.seed,
    )
    return mapper.fit_transform(scaled)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=["pretrained", "finetuned"], required=True)
    parser.add_argument("--hidden", type=Path, help="default: data/hidden/<encoder>")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--plots", type=Path, default=Path("plots/umap"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params).umap

    label_names = read_json(args.data / "labels.json")
    X = read_npy((args.hidden or Path("data/hidden") / args.encoder) / "train.npy")
    y = read_parquet(args.data / "train.parquet")["label"].to_numpy()
    if params.max_points is not None and len(X) > params.max_points:
        keep = np.sort(np.random.default_rng(params.seed).choice(len(X), params.max_points, replace=False))
        X, y = X[keep], y[keep]
    log.info("UMAP of %d x %d %s hidden states", *X.shape, args.encoder)
    xy = embed_2d(X, params)

    points = pd.DataFrame({"x": xy[:, 0].round(4), "y": xy[:, 1].round(4), "label": np.asarray(label_names)[y]})
    with atomic_path(args.plots / f"{args.encoder}.csv") as tmp:
        points.to_csv(tmp, index=False)
    save_umap_png(args.plots / f"{args.encoder}.png", points, label_names, f"UMAP of {args.encoder} hidden states (train)")


if __name__ == "__main__":
    run_stage(main)
