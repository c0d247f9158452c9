"""Length-sorted, per-batch-padded inference for hidden states and predictions (almost no padding)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm

from textclf.io.stage_files import NpyRowWriter, TokenRows
from textclf.models import distributed

# beside a split's hidden states from a classifier (hidden_states --kind classifier): its logits, read by evaluate
LOGITS_SUFFIX = "_logits.npy"


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Indices in batches of rows of similar length, longest first (peak memory shows at once)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def output_width(model: torch.nn.Module, output: str) -> int:
    """Values per row that ``run_batched`` returns: the hidden size, or one logit per label."""
    return model.config.hidden_size if output == "first_token" else model.config.num_labels


@torch.inference_mode()
def run_batched(
    model: torch.nn.Module,
    rows: TokenRows | Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
    output: str,
    device: torch.device,
    bf16: bool = False,
    desc: str = "batches",
    progress: bool = True,
    sinks: dict[str, NpyRowWriter] | None = None,
    first_row: int = 0,
) -> np.ndarray | None:
    """Per row the first token's last hidden state (``first_token``) or the logits, float32, this process's batches
    only: into ``sinks`` ({output: NpyRowWriter}, rows from ``first_row``), else returned (zero at others' rows)."""
    if not isinstance(rows, TokenRows):
        rows = TokenRows.from_lists(rows)
    model.eval().to(device)
    batches = distributed.shard(list(length_sorted_batches(rows.lengths, batch_size)))
    outputs = tuple(sinks or (output,))  # two: a classifier's states and logits from one pass
    result = None if sinks else np.zeros((len(rows), output_width(model, output)), dtype=np.float32)
    shown = progress and distributed.is_main()
    for index in tqdm(batches, desc=desc, unit="batch", mininterval=2.0, disable=not shown):
        ids = [torch.as_tensor(rows.row(i), dtype=torch.long) for i in index]
        padded = pad_sequence(ids, batch_first=True, padding_value=pad_id).to(device)  # right-padded
        mask = pad_sequence([torch.ones_like(row) for row in ids], batch_first=True).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=padded, attention_mask=mask, output_hidden_states=len(outputs) > 1)
        for name in outputs:
            if name == "logits":
                values = out.logits
            else:  # a classifier's last layer is its hidden_states[-1]
                values = (out.hidden_states[-1] if "logits" in out else out.last_hidden_state)[:, 0]
            values = values.float().cpu().numpy()
            if sinks:
                sinks[name].write(first_row + index, values)
            else:
                result[index] = values
    return result
