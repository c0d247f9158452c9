"""The reference notebook's methods, as its cells run them (seeded, no checkpoints saved).

Each function mirrors a pipeline counterpart in ``bench.pipeline_methods`` with the same name.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.measure import SEED, Extraction, StepMeter, sync
from textclf.common.user_paths import SPLITS

# The notebook's fixed settings (reference notebook, "Fine-tuning" cells).
BATCH_SIZE = 16
LEARNING_RATE = 2e-5
WEIGHT_DECAY = 0.01
LR_MAX_ITER = 3000
EXTRACT_BATCH_SIZE = 1000  # datasets.map's default batch size
CLASSIFIER = f"LogisticRegression(max_iter={LR_MAX_ITER})"


def extract_hidden_states(source: str, tokenizer, frames: dict, device: torch.device) -> Extraction:
    """A ``Dataset`` per split, tokenized with padding to the split's longest row, torch format,
    ``map(extract_hidden_states, batched=True)`` (1000 rows a batch), fp32 CLS token."""
    import datasets
    from transformers import AutoModel

    dataset = datasets.DatasetDict(
        {s: datasets.Dataset.from_pandas(f[["text", "label"]], preserve_index=False) for s, f in frames.items()}
    )
    model = AutoModel.from_pretrained(source).to(device)  # the notebook's cell forgets .to(device)

    def tokenize(batch):
        return tokenizer(batch["text"], padding=True, truncation=True)

    start = time.perf_counter()
    dataset_encoded = dataset.map(tokenize, batched=True, batch_size=None)
    tokenize_s = time.perf_counter() - start

    def extract(batch):
        inputs = {k: v.to(device) for k, v in batch.items() if k in tokenizer.model_input_names}
        with torch.no_grad():
            last_hidden_state = model(**inputs).last_hidden_state
        return {"hidden_state": last_hidden_state[:, 0].cpu().numpy()}

    dataset_encoded.set_format("torch", columns=["input_ids", "attention_mask", "label"])
    sync(device)
    start = time.perf_counter()
    dataset_hidden = dataset_encoded.map(extract, batched=True)
    sync(device)
    extract_s = time.perf_counter() - start

    widths = {s: len(dataset_encoded[s][0]["input_ids"]) for s in SPLITS}
    real = sum(int(np.asarray(dataset_encoded[s].with_format("numpy")["attention_mask"]).sum()) for s in SPLITS)
    return Extraction(
        X={s: np.array(dataset_hidden[s]["hidden_state"], dtype=np.float32) for s in SPLITS},
        encoded=dataset_encoded,
        tokenize_s=tokenize_s,
        extract_s=extract_s,
        tokens_fed=sum(widths[s] * len(frames[s]) for s in SPLITS),
        tokens_real=real,
        precision="fp32",
        batch_size=EXTRACT_BATCH_SIZE,
        padded_width=widths,
    )


def classifier():
    """The notebook's ``LogisticRegression(max_iter=3000)``."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=LR_MAX_ITER)


def build_trainer(
    source: str, tokenizer, dataset_encoded, num_labels: int, device: torch.device, out_dir: str, **run
) -> tuple:
    """The notebook's fine-tuning cells: ``AutoModelForSequenceClassification``, its
    ``TrainingArguments`` and a plain ``Trainer`` on the padded-to-max dataset.

    ``run``: ``num_train_epochs`` or ``max_steps``. Returns the trainer and its ``StepMeter``.
    """
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments, set_seed

    set_seed(SEED)  # the notebook leaves the new head unseeded; the benchmark fixes it
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels).to(device)
    for param in model.base_model.parameters():  # train_feature_extractor = True
        param.requires_grad = True
    training_args = TrainingArguments(
        output_dir=out_dir,
        learning_rate=LEARNING_RATE,
        per_device_train_batch_size=BATCH_SIZE,
        per_device_eval_batch_size=BATCH_SIZE,
        weight_decay=WEIGHT_DECAY,
        disable_tqdm=False,
        logging_steps=max(1, len(dataset_encoded["train"]) // BATCH_SIZE),
        push_to_hub=False,
        log_level="error",
        report_to="none",
        save_strategy="no",  # the notebook saves every 500 steps; neither side saves here
        seed=SEED,
        use_cpu=device.type == "cpu",
        **run,
    )
    meter = StepMeter(model, device)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset_encoded["train"],
        eval_dataset=dataset_encoded["validation"],
        processing_class=tokenizer,
        callbacks=[meter.callback],
    )
    return trainer, meter


def validation_accuracy(trainer, dataset_encoded) -> float:
    """The notebook's evaluation: ``trainer.predict`` on the padded validation split."""
    output = trainer.predict(dataset_encoded["validation"])
    return float((output.predictions.argmax(-1) == output.label_ids).mean())
