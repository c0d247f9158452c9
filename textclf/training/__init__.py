"""Fine-tuning: the Hugging Face Trainer as the finetune stage configures it (schedule, sampler, curves
logged to dvclive, the kept step, resumable state)."""
