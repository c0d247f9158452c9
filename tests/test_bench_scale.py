"""bench.make_scaled_data (the generated data) and bench.scale (its pure measuring functions, the table);
one slow end-to-end run of bench.scale on a few hundred rows with its tiny model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench import make_scaled_data as msd
from bench import scale

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


def test_data_ready(generated, tmp_path):
    assert scale.data_ready(generated, 1000)
    assert not scale.data_ready(generated, 999)
    assert not scale.data_ready(tmp_path / "missing", 1000)


def test_parse_and_apply_overrides():
    overrides = scale.parse_overrides(
        [
            "finetune.learning_rate=2e-5",
            "data.label_names=null",
            "data.label_names=[a, b]",
            "device=cpu",
            "finetune.epochs=0.01",
        ]
    )
    assert overrides == {
        "finetune.learning_rate": 2e-5,
        "data.label_names": ["a", "b"],
        "device": "cpu",
        "finetune.epochs": 0.01,
    }
    params = {"device": "auto", "data": {"label_names": None}, "finetune": {"learning_rate": 1.0, "epochs": 1}}
    assert scale.apply_overrides(params, overrides) == {
        "device": "cpu",
        "data": {"label_names": ["a", "b"]},
        "finetune": {"learning_rate": 2e-5, "epochs": 0.01},
    }
    for bad in (["finetune.epochs"], ["a.b.c=1"], ["=1"]):
        with pytest.raises(ValueError):
            scale.parse_overrides(bad)
    with pytest.raises(ValueError, match="no such key"):
        scale.apply_overrides(params, {"finetune.epoch": 1})


def test_ordered_stages():
    available = ["data", "encode", "finetune", "hidden_states@pretrained", "evaluate"]
    assert scale.ordered_stages(["evaluate", "data"], available) == ["data", "evaluate"]
    with pytest.raises(ValueError, match="hidden_states"):
        scale.ordered_stages(["hidden_states"], available)


def test_stage_rows():
    splits = {"train": 1000, "validation": 125, "test": 125}
    assert scale.stage_rows("data", splits, None, 32) == 1250
    assert scale.stage_rows("encode", splits, None, 32) == 1250
    assert scale.stage_rows("hidden_states@pretrained", splits, None, 32) == 1250
    assert scale.stage_rows("evaluate", splits, None, 32) == 250
    assert scale.stage_rows("hidden_states@finetuned", splits, None, 32, 400) == 650  # its train sample
    assert scale.stage_rows("hidden_states@finetuned", splits, None, 32, None) == 1250
    assert scale.stage_rows("finetune", splits, 50, 32) == 1600
    assert scale.stage_rows("finetune", splits, None, 32) is None
    assert scale.stage_rows("baselines", splits, None, 32) is None


def test_stage_record_and_time_output():
    assert scale.stage_record(2.0, 1000, 600 * 1024, 400 * 1024) == {
        "seconds": 2.0,
        "rows": 1000,
        "rows_per_s": 500.0,
        "peak_rss_mb": 600.0,
        "above_model_mb": 200.0,
    }
    assert scale.stage_record(2.0, None, 1024, None)["rows_per_s"] is None
    assert scale.read_peak_kb("123456\n") == 123456
    assert scale.read_peak_kb("Command exited with non-zero status 2\n98765\n") == 98765
    assert scale.steps_from_log("INFO x\nINFO stage.finetune: trained 313 steps, 41.5 rows/s\n") == 313
    assert scale.steps_from_log("no such line") is None


def test_markdown_table():
    def rec(seconds, rows, peak):
        return scale.stage_record(seconds, rows, peak * 1024, 300 * 1024)

    sizes = {
        "100000": {
            "stages": {"data": rec(40.0, 125_000, 1500), "encode": {"failed": True, "returncode": 2, "seconds": 3.0}}
        },
        "16000": {"stages": {"data": rec(10.0, 20_000, 500), "encode": rec(5.0, 20_000, 700)}},
    }
    lines = scale.markdown_table(sizes).splitlines()
    assert lines[0] == "| rows | stage | seconds | rows/s | peak RSS MB | above model MB | rows/s vs smallest |"
    assert lines[2] == "| 16,000 | data | 10.0 | 2,000 | 500 | 200 | 1.00x |"
    assert lines[3] == "| 16,000 | encode | 5.0 | 4,000 | 700 | 400 | 1.00x |"
    assert lines[4] == "| 100,000 | data | 40.0 | 3,125 | 1,500 | 1,200 | 1.56x |"
    assert lines[5] == "| 100,000 | encode | 3.0 | failed (exit 2) | | | |"


@pytest.mark.slow
def test_scale_end_to_end(tmp_path):
    """bench.scale on 240 rows, data and encode, with its tiny model: a git clone and two dvc repro
    runs (~1 minute on 2 cores). Measures the committed HEAD, as the script always does."""
    out = tmp_path / "scale.json"
    rc = scale.main(
        [
            "--rows",
            "240",
            "--workdir",
            str(tmp_path / "work"),
            "--tiny-model",
            "--stages",
            "encode",
            "data",
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    assert rc == 0
    assert result["model"]["footprint_mb"] > 0
    size = result["sizes"]["240"]
    assert size["splits"] == {"train": 240, "validation": 60, "test": 60}
    assert list(size["stages"]) == ["data", "encode"]
    for record in size["stages"].values():
        assert record["rows"] == 360 and record["rows_per_s"] > 0 and record["peak_rss_mb"] > 0
    assert (tmp_path / "work" / "tiny-model" / "config.json").is_file()
