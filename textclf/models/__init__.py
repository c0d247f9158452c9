"""Models: resolving and loading checkpoints (packaged, local or hub), running a model over many rows in
length-sorted batches, and running a stage on several processes (``python -m textclf.models.launch``)."""
