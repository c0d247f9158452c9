"""The commands users run beside the pipeline (``textclf <command>``): predict, export, report, sweep,
and plots_page (rebuilds .dvc/plots_template.html). No stage imports this package."""
