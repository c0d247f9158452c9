"""bench.make_scaled_data: the generated data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench import make_scaled_data as msd

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
LABELS = json.loads((SAMPLE / "labels.json").read_text())


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scaled") / "data-1000"
    msd.main(["--rows", "1000", "--out", str(out), "--source", str(SAMPLE), "--seed", "3"])
    return out


def test_row_counts_and_valid_rows(generated):
    counts = {split: len(read_rows(generated / f"{split}.jsonl")) for split in msd.SPLITS}
    assert counts == {"train": 1000, "validation": 125, "test": 125}
    assert json.loads((generated / "labels.json").read_text()) == LABELS
    for split in msd.SPLITS:
        for row in read_rows(generated / f"{split}.jsonl"):
            assert set(row) == {"text", "label"}
            assert type(row["label"]) is int and 0 <= row["label"] < len(LABELS)
            assert isinstance(row["text"], str) and len(row["text"].split()) >= 3


def test_texts_vary_and_labels_keep_the_source_shares(generated):
    rows = read_rows(generated / "train.jsonl")
    assert len({r["text"] for r in rows}) > 500
    # 1000 rows = 4 whole shuffled rounds of the 240 train texts (40 per label) + 40 rows of a fifth
    shares = Counter(r["label"] for r in rows)
    assert set(shares) == set(range(len(LABELS)))
    assert all(160 <= n <= 200 for n in shares.values()), shares
    # a generated text comes from a source text of the same label: same words, give or take two edits
    source = {}
    for line in (SAMPLE / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        source.setdefault(LABELS.index(row["label"]), []).append(set(row["text"].split()))
    for row in rows[:50]:
        assert any(set(row["text"].split()) <= words for words in source[row["label"]]), row


def test_deterministic_for_a_seed(tmp_path, generated):
    msd.make_scaled_data(1000, tmp_path / "same", SAMPLE, seed=3)
    msd.make_scaled_data(1000, tmp_path / "other", SAMPLE, seed=4)
    for split in msd.SPLITS:
        assert (tmp_path / "same" / f"{split}.jsonl").read_bytes() == (generated / f"{split}.jsonl").read_bytes()
    assert (tmp_path / "other" / "train.jsonl").read_bytes() != (generated / "train.jsonl").read_bytes()


def test_small_sizes_get_the_minimum_eval_rows_and_chunks_smaller_than_the_pool(tmp_path):
    counts = msd.make_scaled_data(7, tmp_path / "tiny", SAMPLE)
    assert counts == {"train": 7, "validation": 60, "test": 60}
    assert len(read_rows(tmp_path / "tiny" / "validation.jsonl")) == 60
    pool = [("a b c d e", 0), ("f g h i", 1), ("j k l", 2)]
    msd.write_split(tmp_path / "many.jsonl", pool, 20, np.random.default_rng(0), chunk=2)
    rows = read_rows(tmp_path / "many.jsonl")
    assert len(rows) == 20 and sorted(Counter(r["label"] for r in rows).values()) == [6, 7, 7]  # 6 whole rounds + 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_perturb():
    where = np.array([[0.0, 0.99], [0.5, 0.5]])
    assert msd.perturb("a b c d", np.array([msd.NO_OP, msd.NO_OP]), where) == "a b c d"
    assert msd.perturb("a b c d", np.array([msd.SWAP, msd.NO_OP]), where) == "d b c a"
    assert msd.perturb("a b c d", np.array([msd.DROP, msd.NO_OP]), where) == "b c d"
    assert msd.perturb("a b c", np.array([msd.DROP, msd.DROP]), where) == "a b c"  # never below 3 words
    assert msd.perturb("a b c d", np.array([msd.REPEAT, msd.NO_OP]), where) == "a a b c d"


def test_template_indices_are_shuffled_rounds():
    chunks = list(msd.template_indices(np.random.default_rng(0), 4, 10, chunk=3))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    flat = np.concatenate(chunks)
    assert sorted(flat[:4]) == sorted(flat[4:8]) == [0, 1, 2, 3]
