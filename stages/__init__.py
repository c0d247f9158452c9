"""The pipeline's stage scripts, run by dvc.yaml as ``python -m stages.<name>`` from the project root.

Run as modules, they import the ``textclf`` package of the checkout they are in (the working
directory comes first on ``sys.path``), never a copy installed in a shared virtual environment.
"""
