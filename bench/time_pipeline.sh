#!/usr/bin/env bash
# Time the whole pipeline the way a user runs it, stage by stage, from an empty DVC cache.
#
#   bench/time_pipeline.sh WORKDIR [section.key=YAML-value ...]
#   bench/time_pipeline.sh /tmp/full data.source=$PWD/../shared/data/emotion \
#       'data.label_names=[sadness, joy, love, anger, fear, surprise]'
#
# Clones this repository's HEAD into WORKDIR (replacing it), sets the given params in params.yaml,
# then runs every stage in dvc.yaml order with `dvc repro --force --single-item` (the same work as one
# `dvc repro`), printing each stage's wall time and peak RSS (of its process tree), the total, and
# the validation/test accuracy of the fine-tuned model and the baselines. The venv's bin must be on PATH.
set -euo pipefail
workdir=$1; shift
repo=$(git rev-parse --show-toplevel)
rm -rf "$workdir"; git clone -q "$repo" "$workdir"; cd "$workdir"
python - "$@" <<'PY'
import sys, yaml
params = yaml.safe_load(open("params.yaml"))
for item in sys.argv[1:]:
    key, value = item.split("=", 1)
    section, name = key.split(".")
    params[section][name] = yaml.safe_load(value)
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
PY
# dependency order (as `dvc repro` runs them), not file order: headline must follow the metrics it reads
stages=$(dvc repro --dry --force 2>/dev/null | sed -n "s/^Running stage '\(.*\)':$/\1/p")
start=$(date +%s.%N)
for stage in $stages; do
  t0=$(date +%s.%N)
  /usr/bin/time -f "%M" -o .peak-rss dvc repro --force --single-item "$stage" > "log.$stage" 2>&1
  t1=$(date +%s.%N)
  printf "%-26s %7.1f s  peak %6d MB\n" "$stage" "$(echo "$t1 - $t0" | bc)" "$(( $(cat .peak-rss) / 1024 ))"
done
end=$(date +%s.%N)
printf "%-26s %7.1f s (%.2f min)\n" total "$(echo "$end - $start" | bc)" "$(echo "($end - $start) / 60" | bc -l)"
python - <<'PY'
import json
finetuned, baselines = json.load(open("metrics/finetuned.json")), json.load(open("metrics/baselines.json"))
for split in ("validation", "test"):
    print(f"fine-tuned {split}: accuracy {finetuned[split]['accuracy']:.4f}, macro F1 {finetuned[split]['f1_macro']:.4f}")
for name, result in baselines.items():
    print(f"{name}: validation accuracy {result['validation']['accuracy']:.4f}, test {result['test']['accuracy']:.4f}")
print("collapsed:", finetuned["validation"].get("collapsed"))
PY
