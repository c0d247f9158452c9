"""The code behind the pipeline's stages (stages/*.py) and the ``textclf`` command, grouped by job.

- ``common``: what every stage shares: params.yaml's schema, a stage's lifecycle, one-line errors, escaping.
- ``io``: reading and writing files: data sources, the files stages pass each other, safe outputs.
- ``models``: loading checkpoints, running them over rows in batches, on one process or several.
- ``training``: fine-tuning with the Hugging Face Trainer.
- ``evaluation``: metrics, intervals, sampling and error analysis.
- ``reporting``: what people look at: plots and the model card.
- ``commands``: what users run beside the pipeline: predict, export, report, sweep.

Each stage in dvc.yaml depends on the subpackages it imports (whole folders), so an edit reruns the stages
that can see it: an edit to ``reporting`` or ``commands`` never reruns fine-tuning or hidden states.
"""
