"""Achieved GFLOP/s of hidden-state extraction and fine-tuning, against this CPU's matmul peak in fp32 and bf16.

    python -m bench.flops --results bench/results.json

Reads a ``bench.compare`` JSON (tokens fed and seconds of the pipeline's extraction and training steps)
and the model's config, then measures the peak: ``torch.mm`` of two 2048 x 2048 matrices, fp32 and bf16,
with this process's threads, best of several runs. That is what the CPU's matrix library achieves on
large, well-shaped products: an upper bound for the encoder's linear layers, which are most of its work.

FLOPs a token of a BERT-style encoder, forward: per layer 2 * (4 h^2 + 2 h i) for the attention projections
and the feed-forward block (a multiply-add counts two) plus 4 s h for the attention scores and their
weighted sum at sequence length s; the embeddings and the 6-label head are negligible. Training costs
about 3 forwards a token (the backward pass two). Padding tokens are computed too, so tokens *fed* count.
Run it on an idle machine: the peak and the bench figures must see the same load.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def forward_flops_per_token(hidden: int, intermediate: int, layers: int, seq_len: float) -> float:
    """FLOPs of one token through the encoder's layers at the given mean sequence length."""
    return layers * (2 * (4 * hidden * hidden + 2 * hidden * intermediate) + 4 * seq_len * hidden)


def matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 7) -> float:
    """Best GFLOP/s of ``size`` x ``size`` matrix products in ``dtype`` (two warm-up products first)."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    for _ in range(2):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def achieved(results: dict, config) -> dict[str, dict]:
    """GFLOP/s of the pipeline's extraction and training steps in a ``bench.compare`` result."""
    shape = dict(hidden=config.hidden_size, intermediate=config.intermediate_size, layers=config.num_hidden_layers)
    extraction = results["steps"]["hidden_states"]["pipeline"]
    rows = sum(results["rows"].values())
    seq = extraction["tokens_fed"] / rows
    training = results["steps"]["finetune_throughput"]["pipeline"]
    fed_per_s = training["real_tokens_per_s"] / (1 - training["padding_fraction"])
    train_seq = fed_per_s * training["timed_s"] / training["timed_rows"]
    return {
        "extraction": {
            "precision": extraction["precision"],
            "tokens_per_s": extraction["tokens_fed"] / extraction["extract_s"],
            "gflops": extraction["tokens_fed"]
            / extraction["extract_s"]
            * forward_flops_per_token(**shape, seq_len=seq)
            / 1e9,
        },
        "training": {
            "precision": "bf16" if training["bf16"] else "fp32",
            "tokens_per_s": fed_per_s,
            "gflops": 3 * fed_per_s * forward_flops_per_token(**shape, seq_len=train_seq) / 1e9,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("bench/results.json"), help="a bench.compare JSON")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(results["checkpoint_path"])
    peak = {"fp32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)}
    print(f"{torch.get_num_threads()} threads; matmul peak: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f}")
    for step, figures in achieved(results, config).items():
        share = figures["gflops"] / peak[figures["precision"]]
        print(
            f"{step:<10} {figures['precision']}: {figures['tokens_per_s']:,.0f} tokens/s, "
            f"{figures['gflops']:.1f} GFLOP/s = {share:.0%} of the {figures['precision']} matmul peak"
        )


if __name__ == "__main__":
    main()
