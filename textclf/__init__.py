"""The code behind the pipeline's stages (stages/*.py) and the ``textclf`` command, one subpackage per job
(docs/code-map.md); each stage depends on the subpackages it imports, so an edit reruns only the stages that see it."""
