"""finetune's choices: the best curve point's weights, early stopping, class-weighted loss, saves by wall time."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import LABELS, read_jsonl, run_main, write_jsonl
from textclf.training.trainer import balanced_class_weights, mark_chosen_step


def test_balanced_class_weights():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    weights = balanced_class_weights(labels, 3)
    np.testing.assert_allclose(weights.numpy(), [10 / 18, 10 / 9, 10 / 3], rtol=1e-6)
    assert weights[labels].mean().item() == pytest.approx(1.0), "the mean weight over the rows is 1"


def test_class_weighted_loss_in_training_only(tiny_model, tmp_path):
    from transformers import TrainingArguments

    from textclf.models.loading import load_classifier
    from textclf.training.trainer import EpochSeededSampler, PipelineTrainer

    torch.manual_seed(0)
    model = load_classifier(str(tiny_model), LABELS)
    weights = torch.tensor([3.0, 1.0, 1.0, 1.0, 1.0, 0.5])
    trainer = PipelineTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"),
        train_sampler=EpochSeededSampler([3, 3], 2, 0),
        class_weights=weights,
    )
    inputs = {"input_ids": torch.tensor([[101, 2000, 102], [101, 3000, 102]]), "labels": torch.tensor([0, 5])}
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"]).logits
        plain = torch.nn.functional.cross_entropy(logits, inputs["labels"])
        assert trainer.compute_loss(model, dict(inputs)).item() == pytest.approx(plain.item(), rel=1e-5)
        model.train()
        torch.manual_seed(1)
        weighted = trainer.compute_loss(model, dict(inputs))
        torch.manual_seed(1)
        train_logits = model(input_ids=inputs["input_ids"]).logits  # the same dropout
    rows = torch.nn.functional.cross_entropy(train_logits, inputs["labels"], reduction="none")
    assert weighted.item() == pytest.approx(((rows * weights[inputs["labels"]]).mean()).item(), rel=1e-5)


def _validation_loss(project) -> float:
    """Mean cross-entropy of the written model on the validation rows (as the curve evaluations pad them)."""
    from transformers import DataCollatorWithPadding

    from textclf.models.loading import load_finetuned, load_tokenizer
    from textclf.training.trainer import load_split

    model = load_finetuned(project / "models/finetuned", LABELS).eval()
    rows = load_split(project / "data/encoded/validation.parquet", sort_by_length=True)
    batch = DataCollatorWithPadding(load_tokenizer(str(project / "models/finetuned")))(list(rows))
    with torch.no_grad():
        return model(**batch).loss.item()


@pytest.mark.slow
def test_the_model_written_is_the_best_curve_point_and_early_stopping_ends_the_run(project, small_folder):
    """best_metric loss, patience 6: the run stops 6 points after its lowest validation loss, and the
    model written has that loss on the same validation rows (all of them: curve_eval_rows 500).
    The validation rows are the train texts with every label moved to the next one: as the model
    learns the train labels, the validation loss dips, then rises."""
    rows = read_jsonl(small_folder / "train.jsonl")
    write_jsonl(
        small_folder / "validation.jsonl",
        [{"text": r["text"], "label": LABELS[(LABELS.index(r["label"]) + 1) % len(LABELS)]} for r in rows],
    )
    params = project / "params.yaml"
    text = (
        params.read_text()
        .replace("best_metric: null", "best_metric: loss")
        .replace("precision: auto", "precision: fp32")
    )
    text = text.replace("early_stopping_patience: null", "early_stopping_patience: 6").replace(
        "eval_steps: 0.05", "eval_steps: 2"
    )
    params.write_text(
        text.replace("learning_rate: 0.001", "learning_rate: 0.01").replace("epochs: 2", "epochs: 6")
    )  # 30 steps
    run_main("data")
    run_main("encode")
    run_main("finetune")
    curve = pd.read_csv(project / "dvclive/plots/metrics/curve_subset/loss.tsv", sep="\t")
    live = json.loads((project / "dvclive/metrics.json").read_text())
    best = int(curve.loc[curve["loss"].idxmin(), "step"])
    assert live["best_step"] == best, curve.to_dict("list")
    assert curve["step"].tolist() == list(range(2, best + 13, 2)) and best + 12 < 30, "stopped 6 points after the best"
    assert live["chosen"]["loss"] == pytest.approx(curve["loss"].min(), abs=1e-6)
    for name in ("curve_subset/loss", "curve_subset/accuracy", "train/loss"):  # the plots page's rule at the kept step
        marked = pd.read_csv(project / f"dvclive/plots/metrics/{name}.tsv", sep="\t")
        assert list(marked.columns[:2]) == ["step", "chosen"] and marked.columns[-1] != "chosen", name
        assert marked.loc[marked["chosen"] == 1, "step"].tolist() == [best], name
    written = _validation_loss(project)
    assert written == pytest.approx(curve["loss"].min(), abs=1e-5)
    assert curve["loss"].iloc[-1] - written > 1e-4, "not the last point's weights"


def test_mark_chosen_step_adds_the_column_after_step_once(tmp_path):
    curve = tmp_path / "plots/metrics/curve_subset/accuracy.tsv"
    curve.parent.mkdir(parents=True)
    curve.write_text("step\taccuracy\n10\t0.5\n20\t0.75\n30\t0.7\n")
    mark_chosen_step(tmp_path, 20)
    expected = "step\tchosen\taccuracy\n10\t0\t0.5\n20\t1\t0.75\n30\t0\t0.7\n"
    assert curve.read_text() == expected
    mark_chosen_step(tmp_path, 30)  # a file already marked is left as it is
    assert curve.read_text() == expected


@pytest.mark.parametrize("minutes, saved", [(10, ["checkpoint-3", "checkpoint-6"]), (None, ["checkpoint-6"])])
def test_state_is_saved_by_wall_time_as_well_as_by_steps(tmp_path, tiny_model, minutes, saved):
    """save_steps beyond the run's 6 steps; a fake clock at 4 minutes a step: with save_minutes 10 the
    state is saved at step 3 (12 minutes after the start); with null only at the end, as the Trainer does."""
    from transformers import AutoTokenizer

    from conftest import committed_params
    from textclf.common.params import FinetuneParams
    from textclf.training.trainer import SaveByTime, build_trainer, load_split

    path = tmp_path / "train.parquet"
    pd.DataFrame(
        {"input_ids": [[101, 2000 + i, 102] for i in range(12)], "label": [i % 6 for i in range(12)]}
    ).to_parquet(path)
    params = FinetuneParams.model_validate({**committed_params()["finetune"], "batch_size": 2, "save_minutes": minutes})
    trainer = build_trainer(
        params,
        str(tiny_model),
        False,
        LABELS,
        AutoTokenizer.from_pretrained(tiny_model),
        load_split(path),
        torch.device("cpu"),
        tmp_path / "state",
        max_steps=6,
        save_steps=1000,
        save_total_limit=None,
        eval_strategy="no",
        logging_strategy="no",
    )
    saver = next(c for c in trainer.callback_handler.callbacks if isinstance(c, SaveByTime))
    saver.clock, saver.last = (lambda: 240.0 * trainer.state.global_step), 0.0
    trainer.train()
    assert (
        sorted(p.name for p in (tmp_path / "state").glob("checkpoint-*/trainer_state.json") for p in [p.parent])
        == saved
    )


@pytest.mark.parametrize("train_word_embeddings", [False, True])
def test_the_token_embedding_table_is_trained_only_when_asked(
    encoded_small, tiny_model, tmp_path, monkeypatch, train_word_embeddings
):
    from safetensors.numpy import load_file

    from conftest import copy_encoded

    work = copy_encoded(encoded_small, tmp_path / "work", epochs=1, train_word_embeddings=train_word_embeddings)
    monkeypatch.chdir(work)
    run_main("finetune")
    pretrained, trained = (
        load_file(tiny_model / "model.safetensors"),
        load_file(work / "models/finetuned/model.safetensors"),
    )
    kept = {
        name: np.array_equal(trained[f"bert.{name}"], pretrained[name])
        for name in ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight")
    }
    assert kept == {
        "embeddings.word_embeddings.weight": not train_word_embeddings,
        "embeddings.position_embeddings.weight": False,
    }
