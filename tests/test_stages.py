"""Each stage's main() on a few dozen rows and a tiny random BERT loaded like a real checkpoint; the outputs
of a whole run are conftest's ``trained_project`` (each stage's main() once a session, in this process)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import LABELS, ROOT, run_main
from textclf.training.trainer import freeze_encoder

SPLITS = ("train", "validation", "test")


def prepare(project):
    run_main("data")
    run_main("encode")


def test_data_stage_writes_splits_and_labels(project):
    run_main("data")
    assert json.loads((project / "data/prepared/labels.json").read_text()) == LABELS
    sizes = {s: len(pd.read_parquet(project / f"data/prepared/{s}.parquet")) for s in SPLITS}
    assert sizes == {"train": 36, "validation": 12, "test": 12}
    train = pd.read_parquet(project / "data/prepared/train.parquet")
    assert list(train.columns) == ["text", "label"] and set(train["label"]) == set(range(6))


def test_encode_stage_stores_unpadded_ids(trained_project):
    project = trained_project
    encoded = pd.read_parquet(project / "data/encoded/train.parquet")
    lengths = encoded["input_ids"].map(len)
    assert (lengths == encoded["length"]).all()
    assert lengths.nunique() > 1, "rows must keep their own length: no padding to the longest"
    assert lengths.max() <= 32  # model.max_length
    assert (project / "data/encoded/tokenizer/tokenizer_config.json").is_file()


def test_hidden_states_match_unbatched_model(trained_project, tiny_model):
    """Length-sorted, per-batch-padded extraction equals running each row alone."""
    import torch
    from transformers import AutoModel

    project = trained_project
    states = np.load(project / "data/hidden/pretrained/validation.npy")
    encoded = pd.read_parquet(project / "data/encoded/validation.parquet")
    assert states.shape == (12, 32) and states.dtype == np.float32
    model = AutoModel.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        for i in (0, 5, 11):
            ids = torch.tensor([list(encoded["input_ids"][i])])
            expected = model(input_ids=ids).last_hidden_state[0, 0].numpy()
            np.testing.assert_allclose(states[i], expected, atol=1e-3)  # fp32 sums in another order


def test_baselines_stage_metrics_and_plots(trained_project):
    project = trained_project
    metrics = json.loads((project / "metrics/baselines.json").read_text())
    assert set(metrics) == {"dummy_uniform", "dummy_most_frequent", "logistic_regression"}
    for model in metrics.values():
        for split in SPLITS:
            assert 0.0 <= model[split]["accuracy"] <= 1.0 and 0.0 <= model[split]["f1_weighted"] <= 1.0
    # most_frequent predicts one class: 6 balanced labels give exactly 1/6
    assert metrics["dummy_most_frequent"]["train"]["accuracy"] == pytest.approx(1 / 6, abs=1e-6)
    confusion = pd.read_csv(project / "plots/baselines/confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted", "actual_id", "predicted_id", "weight"]
    assert confusion["weight"].sum() == 12, "every validation row is counted"
    assert not confusion.duplicated(["actual", "predicted"]).any(), "one row per label pair"
    assert set(confusion["actual"]) == set(LABELS)
    Image.open(project / "plots/baselines/confusion.png").verify()


def test_umap_stage_points_and_png(trained_project):
    points = pd.read_csv(trained_project / "plots/umap/pretrained.csv")
    assert list(points.columns) == ["x", "y", "label"] and len(points) == 36
    assert set(points["label"]) == set(LABELS) and np.isfinite(points[["x", "y"]].to_numpy()).all()
    Image.open(trained_project / "plots/umap/pretrained.png").verify()


def test_finetune_then_evaluate_and_finetuned_hidden_states(trained_project):
    project = trained_project
    model_dir = project / "models/finetuned"
    assert (model_dir / "model.safetensors").is_file() and not list(model_dir.glob("*.bin"))
    assert not list(model_dir.glob("checkpoint-*")), "no Trainer checkpoints in the output"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    assert not list((project / "checkpoints/finetune").glob("*")), "resumable state is removed after success"

    # 36 rows, batch 8: 5 steps an epoch, 2 epochs; eval_steps 0.05 of 10 steps rounds up to every step
    live = json.loads((project / "dvclive/metrics.json").read_text())
    assert live["step"] == 10 and 0 <= live["curve_subset"]["accuracy"] <= 1
    for name in (
        "curve_subset/accuracy",
        "curve_subset/f1_macro",
        "curve_subset/f1_weighted",
        "curve_subset/loss",
        "train/loss",
    ):
        curve = pd.read_csv(project / f"dvclive/plots/metrics/{name}.tsv", sep="\t")
        assert curve["step"].tolist() == list(range(1, 11)), f"{name}: one point per optimizer step"

    assert np.load(project / "data/hidden/finetuned/train.npy").shape == (36, 32)

    metrics = json.loads((project / "metrics/finetuned.json").read_text())
    assert set(metrics) == {"validation", "test"}
    assert set(metrics["validation"]["f1_per_label"]) == set(LABELS)
    for split in ("validation", "test"):
        for name in ("accuracy", "f1_macro"):
            low, value, high = (metrics[split][f"{name}{end}"] for end in ("_ci95_low", "", "_ci95_high"))
            assert low <= value <= high, (split, name)
    Image.open(project / "plots/finetuned/confusion.png").verify()


def test_frozen_encoder_trains_only_the_head(project, tiny_model):
    from textclf.models.loading import load_classifier

    model = load_classifier(str(tiny_model), LABELS)
    trainable = freeze_encoder(model)
    assert trainable == sum(p.numel() for p in model.classifier.parameters())
    assert all(not p.requires_grad for p in model.base_model.parameters())


@pytest.mark.parametrize("rows", [36, 240, 1000, 16000])
def test_the_schedule_gives_enough_steps_and_curve_points_at_every_size(rows):
    from textclf.common.params import load_params
    from textclf.training.trainer import schedule

    params = load_params(ROOT / "params.yaml").finetune
    total, every = schedule(rows, params)
    per_epoch = -(-rows // params.batch_size)
    assert total == max(int(params.epochs * per_epoch), params.min_steps)
    assert total >= params.min_steps >= 100, "small data gets at least min_steps updates"
    assert total // every >= 20, "at least 20 curve points"


@pytest.mark.slow
def test_finetuned_states_of_a_train_sample_are_those_rows_of_the_full_pass(project, tiny_model, small_folder):
    """hidden_states --train-rows sample computes only a stratified sample of the train rows (the UMAP's), each
    equal to the same row of an every-row pass; validation and test stay whole; umap draws among the sample."""
    from conftest import write_params
    from stages import hidden_states, umap_embed
    from textclf.evaluation.sampling import stratified_sample

    prepare(project)
    write_params(
        project / "params.yaml",
        data={"source": str(small_folder)},
        model={"checkpoint": str(tiny_model)},
        hidden_states={"finetuned_train_rows": 12},
        umap={"n_neighbors": 5, "max_points": 10},
    )
    common = ["--encoder", str(tiny_model), "--encoded", "data/encoded", "--kind", "encoder"]
    hidden_states.main([*common, "--out", "data/hidden/all", "--train-rows", "all"])
    hidden_states.main([*common, "--out", "data/hidden/sample", "--train-rows", "sample"])
    every, sample = project / "data/hidden/all", project / "data/hidden/sample"

    labels = pd.read_parquet(project / "data/prepared/train.parquet")["label"].to_numpy()
    rows = np.load(sample / "train_rows.npy")
    assert rows.tolist() == stratified_sample(labels, 12, 42).tolist()
    assert not (every / "train_rows.npy").exists() and np.load(every / "train.npy").shape == (36, 32)
    np.testing.assert_allclose(np.load(sample / "train.npy"), np.load(every / "train.npy")[rows], atol=1e-5)
    for split in ("validation", "test"):
        assert not (sample / f"{split}_rows.npy").exists()
        np.testing.assert_allclose(np.load(sample / f"{split}.npy"), np.load(every / f"{split}.npy"), atol=1e-5)

    umap_embed.main(["--hidden", str(sample), "--data", "data/prepared", "--out", "plots/umap/sample"])
    points = pd.read_csv(project / "plots/umap/sample.csv")
    assert len(points) == 10 and set(points["label"]) <= set(LABELS)


@pytest.mark.slow
def test_hidden_states_in_bf16_are_close_to_fp32(project, tiny_model, small_folder):
    """precision bf16 (what auto means on CPUs with native bf16) runs the encoder under bf16 autocast and
    writes float32 states close to the fp32 pass."""
    from conftest import write_params
    from stages import hidden_states

    prepare(project)
    common = ["--encoder", "pretrained", "--encoded", "data/encoded", "--train-rows", "all"]
    hidden_states.main([*common, "--out", "data/hidden/fp32", "--kind", "encoder"])
    write_params(
        project / "params.yaml",
        data={"source": str(small_folder)},
        model={"checkpoint": str(tiny_model)},
        hidden_states={"precision": "bf16"},
    )
    hidden_states.main([*common, "--out", "data/hidden/bf16", "--kind", "encoder"])
    fp32, bf16 = (np.load(project / f"data/hidden/{p}/validation.npy") for p in ("fp32", "bf16"))
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32), "bf16 autocast was not applied"
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() > 0.99
