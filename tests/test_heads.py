"""Logits from saved first-token states and the model's own head equal a whole-model forward pass
(textclf/evaluation/heads.py, stages/evaluate.py), for BERT-, DistilBERT- and RoBERTa-style classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification

from conftest import LABELS, run_main
from textclf.common.errors import PipelineError
from textclf.evaluation.heads import load_head
from textclf.models.inference import run_batched

TINY = dict(
    num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, vocab_size=100
)


def _config(kind: str):
    from transformers import BertConfig, DistilBertConfig, ElectraConfig, RobertaConfig

    labels = dict(
        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)}
    )
    if kind == "distilbert":
        return DistilBertConfig(
            vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64, **labels
        )
    if kind == "roberta":
        return RobertaConfig(hidden_size=32, pad_token_id=1, **TINY, **labels)
    if kind == "electra":
        return ElectraConfig(hidden_size=32, embedding_size=32, **TINY, **labels)
    return BertConfig(hidden_size=32, **TINY, **labels)


def _classifier(kind: str, folder: Path) -> Path:
    """A tiny random ``kind`` classifier, saved; its head's weights scaled up so that logits spread."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(_config(kind))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "classifier" in name or "pooler" in name:
                parameter.mul_(30)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _rows(n: int = 40, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)  # ids from 5 up: never a pad id (RoBERTa's positions skip pads)
    return [rng.integers(5, 100, size=rng.integers(2, 30)).tolist() for _ in range(n)]


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
def test_head_on_saved_states_equals_a_forward_pass(kind, tmp_path):
    folder = _classifier(kind, tmp_path / kind)
    rows, cpu = _rows(), torch.device("cpu")
    # loaded directly: these random models have no tokenizer (load_finetuned refuses such a folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    pad = model.config.pad_token_id or 0
    expected = run_batched(model, rows, pad, 16, output="logits", device=cpu, progress=False)
    # the states as hidden_states@finetuned writes them: the bare encoder, other batches (here 7 rows)
    encoder = AutoModel.from_pretrained(folder).eval()
    states = run_batched(encoder, rows, pad, 7, output="first_token", device=cpu, progress=False)
    head, how = load_head(folder, LABELS)
    assert head is not None and head.architecture in how
    logits = head.logits(states, rows_per_chunk=9)  # several chunks
    assert logits.dtype == np.float32 and logits.shape == (len(rows), len(LABELS))
    assert len(set(expected.argmax(1))) > 1, "the test needs a model that predicts several labels"
    np.testing.assert_array_equal(logits.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)


def test_another_head_or_other_precision_is_not_taken_for_one_of_these(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _classifier("electra", tmp_path / "electra")
    head, why = load_head(folder, LABELS)
    assert head is None and "ElectraForSequenceClassification head is not one of" in why
    folder = _classifier("bert", tmp_path / "bert")
    tensors = load_file(folder / "model.safetensors")
    save_file(
        {k: v.bfloat16() if k.startswith("classifier") else v for k, v in tensors.items()}, folder / "model.safetensors"
    )
    head, why = load_head(folder, LABELS)
    assert head is None and why.endswith("the head's weights are not float32")


def test_damaged_or_foreign_head_weights_are_one_line(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _classifier("bert", tmp_path / "bert")
    with pytest.raises(PipelineError, match=r"the model's labels .* are not the data's"):
        load_head(folder, list(reversed(LABELS)))
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    save_file({k: v for k, v in tensors.items() if not k.startswith("classifier")}, weights)
    with pytest.raises(PipelineError, match=r"weights lack classifier\.weight, classifier\.bias; the folder is dama"):
        load_head(folder, LABELS)
    weights.write_bytes(b"\x00" * 100)
    with pytest.raises(PipelineError, match=r"model\.safetensors: could not load the model"):
        load_head(folder, LABELS)


def _tiny_classifier(tiny_model: Path, out: Path) -> None:
    """The project's tiny BERT as a classifier of the data's labels, its head scaled up, with its tokenizer."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(1)
    model = BertForSequenceClassification.from_pretrained(
        tiny_model,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "classifier" in name or "pooler" in name:
                parameter.mul_(30)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)


def test_evaluate_stage_from_states_equals_its_forward_pass_fallback(project, tiny_model, caplog):
    from textclf.evaluation.error_analysis import read_predictions

    run_main("data")
    run_main("encode")
    _tiny_classifier(tiny_model, project / "models/finetuned")
    run_main("hidden_states@finetuned")
    outputs = {}
    for how in ("head", "forward"):
        if how == "forward":  # an architecture textclf.evaluation.heads does not know: the whole model runs
            config = json.loads((project / "models/finetuned/config.json").read_text())
            config["architectures"] = ["MyBertForSequenceClassification"]
            (project / "models/finetuned/config.json").write_text(json.dumps(config))
        caplog.clear()
        with caplog.at_level("INFO"):
            run_main("evaluate")
        assert ("running the whole model" in caplog.text) == (how == "forward"), caplog.text
        outputs[how] = {
            "metrics": json.loads((project / "metrics/finetuned.json").read_text()),
            **{s: read_predictions(project / f"data/predictions/{s}.parquet") for s in ("validation", "test")},
        }
    assert outputs["head"]["metrics"] == outputs["forward"]["metrics"]
    for split in ("validation", "test"):
        (labels, head), (_, forward) = outputs["head"][split], outputs["forward"][split]
        assert len(labels) == 12 and np.ptp(forward, axis=0).min() > 1e-3, "logits that differ between rows"
        np.testing.assert_array_equal(head.argmax(1), forward.argmax(1))
        np.testing.assert_allclose(head, forward, rtol=0, atol=1e-5)


def test_evaluate_refuses_states_of_other_rows(project, tiny_model):
    run_main("data")
    run_main("encode")
    _tiny_classifier(tiny_model, project / "models/finetuned")
    run_main("hidden_states@finetuned")
    states = project / "data/hidden/finetuned/validation.npy"
    np.save(states, np.load(states)[:5])
    with pytest.raises(
        PipelineError,
        match=r"^data/hidden/finetuned/validation\.npy: states of shape \(5, 32\), "
        r"expected \(12, 32\) .* rerun hidden_states@finetuned",
    ):
        run_main("evaluate")
    assert not (project / "data/predictions").exists() and not (project / "metrics/finetuned.json").exists()
