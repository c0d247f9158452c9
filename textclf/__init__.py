"""Shared code of the pipeline's stages: params schema, data loading, models, batching, plots."""
