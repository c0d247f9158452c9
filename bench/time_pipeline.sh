#!/usr/bin/env bash
# Time the whole pipeline the way a user runs it, stage by stage, from an empty DVC cache.
#
#   bench/time_pipeline.sh WORKDIR [section.key=YAML-value ...]
#   bench/time_pipeline.sh /tmp/full data.source=$PWD/../shared/data/emotion \
#       'data.label_names=[sadness, joy, love, anger, fear, surprise]'
#
# Clones this repository's HEAD into WORKDIR (replacing it), sets the given params in params.yaml,
# then runs `dvc repro --force` once (every stage, as a user runs the pipeline), printing each stage's wall
# time, the total, the peak RSS of the largest process, and the validation/test accuracy of the fine-tuned
# model and the baselines. The venv's bin must be on PATH.
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
# one `dvc repro --force`, as a user runs it (DVC starts once); each stage's time runs from its
# "Running stage" line to the next one (the last to the end), its lines stamped as they arrive
/usr/bin/time -f "%M" -o .peak-rss dvc repro --force 2>&1 | python -u -c '
import sys, time
start = last = time.time(); stage = None; log = open("log.repro", "w")
def report(now):
    if stage:
        print(f"{stage:<26} {now - last:7.1f} s", flush=True)
for line in sys.stdin:
    log.write(line)
    if line.startswith("Running stage "):
        now = time.time(); report(now); stage, last = line.split(chr(39))[1], now
now = time.time(); report(now)
print("total".ljust(26), f"{now - start:7.1f} s ({(now - start) / 60:.2f} min)")
'
echo "peak RSS of the largest process: $(( $(cat .peak-rss) / 1024 )) MB"
python - <<'PY'
import json
finetuned, baselines = json.load(open("metrics/finetuned.json")), json.load(open("metrics/baselines.json"))
for split in ("validation", "test"):
    print(f"fine-tuned {split}: accuracy {finetuned[split]['accuracy']:.4f}, macro F1 {finetuned[split]['f1_macro']:.4f}")
for name, result in baselines.items():
    print(f"{name}: validation accuracy {result['validation']['accuracy']:.4f}, test {result['test']['accuracy']:.4f}")
print("collapsed:", finetuned["validation"].get("collapsed"))
PY
