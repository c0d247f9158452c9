"""Stage umap: 2-D UMAP of the train hidden states, as the notebook's figure and as plot data.

Embeds a stratified sample of at most ``umap.max_points`` rows (among those the states hold), read from disk alone.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics.pairwise import cosine_distances
from sklearn.preprocessing import MinMaxScaler

from textclf.common.stage import StageParser, run_stage
from textclf.evaluation.sampling import stratified_sample
from textclf.io.stage_files import read_json, read_parquet, read_states
from textclf.reporting.plots import save_png, umap_figure, write_umap_csv

log = logging.getLogger("stage.umap")
UMAP_SMALL_DATA = 4096  # umap-learn computes exact distances for fewer rows than this (umap_.py, fit)


def cache_compiled_code(*packages: str) -> None:
    """Keep the machine code numba compiles for these packages' functions (in their __pycache__, else numba's
    user cache): umap-learn marks few of them ``cache=True``, so every run compiled them again, seconds a run
    (bench/RESULTS.md, section 15). The same code: the same embedding. No writable cache: compiled as before."""
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in packages:
            for function in list(vars(module).values()):
                if isinstance(function, CPUDispatcher) and isinstance(function._cache, NullCache):
                    with contextlib.suppress(RuntimeError):  # "cannot cache ... no locator available"
                        function.enable_caching()


def embed_2d(X: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """MinMaxScaler then UMAP(n_components=2, metric="cosine"), as in the notebook, seeded; below UMAP's exact-distance
    threshold, distances precomputed in one product give the same neighbours sooner (bench/RESULTS.md, section 10)."""
    from umap import UMAP  # numba compiles UMAP's code at import: only when embedding

    cache_compiled_code("umap", "pynndescent")
    scaled = MinMaxScaler().fit_transform(X)
    small = len(scaled) < UMAP_SMALL_DATA
    mapper = UMAP(
        n_components=2,
        metric="precomputed" if small else "cosine",
        n_neighbors=min(n_neighbors, len(X) - 1),
        min_dist=min_dist,
        random_state=seed,
    )
    return mapper.fit_transform(cosine_distances(scaled) if small else scaled)


def main(argv: list[str] | None = None) -> None:
    parser = StageParser(__doc__)
    parser.add_argument("--hidden", type=Path, required=True, help="hidden states folder (data/hidden/<encoder>)")
    parser.add_argument("--data", type=Path, required=True, help="the data stage's folder (data/prepared)")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix (plots/umap/<encoder>)")
    args, params = parser.parse(argv, "umap")

    label_names = read_json(args.data / "labels.json")
    y = read_parquet(args.data / "train.parquet", columns=("label",))["label"].to_numpy()
    X, rows = read_states(args.hidden, "train", len(y), sample_ok=True)  # only the sampled rows are read from disk
    if rows is not None:  # the folder holds a sample of the train rows (hidden_states@finetuned): embed among them
        log.info(
            "%s holds %d of the %d train rows (hidden_states.finetuned_train_rows)", args.hidden, len(rows), len(y)
        )
        y = y[rows]
    keep = np.arange(len(y)) if params.max_points is None else stratified_sample(y, params.max_points, params.seed)
    X, y = np.asarray(X[keep]), y[keep]
    log.info("UMAP of %d x %d hidden states from %s", *X.shape, args.hidden)
    xy = embed_2d(X, params.n_neighbors, params.min_dist, params.seed)

    points = write_umap_csv(args.out.with_suffix(".csv"), xy, y, label_names)
    title = f"UMAP of {args.out.name} hidden states (train)"
    save_png(umap_figure(points, label_names, title), args.out.with_suffix(".png"), dpi=80)


if __name__ == "__main__":
    run_stage(main)
