"""``textclf sweep``: summarise a sweep of DVC experiments, mean ± spread over seeds per configuration.

    dvc exp run --queue -S 'finetune.learning_rate=5e-5,1e-4' -S 'finetune.seed=1,2,3'
    dvc queue start                      # runs the 6 experiments; `dvc queue status` shows them
    textclf sweep                        # one row per learning rate: mean ± spread of its 3 seeds

Rows group experiments by every param but the seed; the best by mean validation ``--metric`` is marked.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from textclf.common.errors import PipelineError, run_cli
from textclf.common.escape import terminal

WIDTH = 100  # the table fits a 100-column terminal
# the headline's keys (metrics/headline.json) and their column titles
COLUMNS = {
    "val_accuracy": "val acc",
    "val_f1_macro": "val F1m",
    "test_accuracy": "test acc",
    "test_f1_macro": "test F1m",
}


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"finetune": {"seed": 1}}`` -> ``{"finetune.seed": 1}`` (lists stay values)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat.update(flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


def entry(rev: dict, name: str, params_file: str, metrics_file: str) -> dict:
    """One ``dvc exp show`` entry as ``{"name", "params" (flattened), "metrics"}``; a file not there as {}."""
    data = rev.get("data") or {}
    files = (("params", params_file), ("metrics", metrics_file))
    params, metrics = (((data.get(kind) or {}).get(file) or {}).get("data") or {} for kind, file in files)
    return {"name": name, "params": flatten(params), "metrics": metrics}


def baseline(shown: list[dict], rev: str, params_file: str, metrics_file: str) -> dict:
    """The workspace, or a commit ``dvc exp show`` lists (by branch or tag name, or the start of its sha)."""
    for commit in shown:
        sha = commit.get("rev") or ""
        if rev in (sha, commit.get("name") or "") or (len(rev) >= 7 and sha.startswith(rev)):
            return entry(commit, rev, params_file, metrics_file)  # no metrics yet: its row shows "-"
    raise PipelineError(f"baseline {rev}: not the workspace or a commit `dvc exp show` lists (a branch, tag or sha)")


def experiments(shown: list[dict], params_file: str, metrics_file: str) -> tuple[list[dict], int]:
    """(the experiments under each commit that have params and metrics, the count of those without)."""
    found, missing = [], 0
    for commit in shown:
        for group in commit.get("experiments") or []:
            # a queued or running experiment shows its parent commit's metrics files: not its results
            done = ((group.get("executor") or {}).get("state") or "success") == "success"
            for rev in group.get("revs") or []:
                exp = entry(rev, rev.get("name") or rev.get("rev", "")[:7], params_file, metrics_file) if done else {}
                if exp and exp["params"] and exp["metrics"]:
                    found.append(exp)
                else:
                    missing += 1
    return found, missing


def summarise(found: list[dict], base: dict, seed_param: str, metric: str) -> tuple[list[str], list[dict]]:
    """(the params that tell configurations apart, the baseline's row then one per configuration, best marked)."""
    keys = sorted({key for exp in [*found, base] for key in exp["params"]} - {seed_param})
    value = lambda exp, key: json.dumps(exp["params"].get(key), sort_keys=True)  # noqa: E731
    varying = [k for k in keys if len({value(exp, k) for exp in [*found, base]}) > 1]
    config = lambda exp: [value(exp, k) for k in varying]  # noqa: E731

    def row(members: list[dict]) -> dict:
        out = {"config": {k: members[0]["params"].get(k) for k in varying}, "n": len(members)}
        for column in COLUMNS:
            values = [v for m in members if isinstance(v := m["metrics"].get(column), (int, float))]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            out[column] = (statistics.fmean(values), spread) if values else None
        return out

    rows = [row(list(members)) for _, members in itertools.groupby(sorted(found, key=config), key=config)]
    if scored := [r for r in rows if r[f"val_{metric}"] is not None]:
        max(scored, key=lambda r: r[f"val_{metric}"][0])["best"] = True
    return varying, [{**row([base]), "baseline": base["name"]}, *rows]


def short_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key by its shortest ending that no other key shares (``finetune.lr`` -> ``lr``)."""
    names = {}
    for key in keys:
        parts = key.split(".")
        endings = (".".join(parts[-n:]) for n in range(1, len(parts)))
        unique = (e for e in endings if not any(o != key and (o == e or o.endswith("." + e)) for o in keys))
        names[key] = next(unique, key)
    return names


def common_values(varying: list[str], rows: list[dict]) -> dict[str, object]:
    """The value of each key that more than half of the experiments' configurations (not the baseline) share."""
    tops = {k: Counter(json.dumps(r["config"][k], sort_keys=True) for r in rows).most_common(1)[0] for k in varying}
    return {k: json.loads(value) for k, (value, count) in tops.items() if count * 2 > len(rows)}


def render(varying: list[str], rows: list[dict], metric: str, missing: int) -> str:
    """The table, at most ``WIDTH`` columns: configuration, runs, mean±spread of each metric."""
    short = short_names(varying)
    common = common_values(varying, rows[1:])

    def cell(ms: tuple[float, float] | None, n: int) -> str:  # one run: no spread to show
        return "-" if ms is None else f"{ms[0]:.4f}" + (f"±{ms[1]:.4f}" if n > 1 else "")

    def config(r: dict) -> str:
        shown = [terminal(f"{short[k]}={v}") for k, v in r["config"].items() if k not in common or v != common[k]]
        text = " ".join(shown) or "(common values)"
        return f"{terminal(r['baseline'])}: {text}" if "baseline" in r else text

    cells = [[cell(r[column], r["n"]) for column in COLUMNS] for r in rows]
    configs = [config(r) for r in rows]
    width = max(len(c) for c in [*COLUMNS.values(), *(c for row in cells for c in row)])
    config_width = min(max(len(c) for c in configs + ["configuration"]), WIDTH - 6 - len(COLUMNS) * (width + 1))
    fit = lambda text: text if len(text) <= config_width else text[: config_width - 1] + "…"  # noqa: E731
    lines = [f"  {'configuration':<{config_width}} {'n':>3} " + " ".join(f"{c:>{width}}" for c in COLUMNS.values())]
    for row, config, values in zip(rows, configs, cells, strict=True):
        mark = "* " if row.get("best") else "  "
        lines.append(f"{mark}{fit(config):<{config_width}} {row['n']:>3} " + " ".join(f"{v:>{width}}" for v in values))
    lines.append(f"first row: the baseline, {terminal(rows[0]['baseline'])} (one run); then the experiments")
    lines.append(f"* best mean validation {metric} (test is shown, never used to choose); mean±sample std over seeds")
    if common:
        listed = ", ".join(terminal(f"{short[k]}={v}") for k, v in common.items())
        lines += textwrap.wrap(f"common values: {listed}", WIDTH)
    if missing:
        lines.append(f"({missing} experiment(s) without metrics left out: queued, running or failed)")
    return "\n".join(lines)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textclf sweep", description=__doc__.splitlines()[0])
    metric_help = "validation metric that picks the best configuration (default accuracy)"
    parser.add_argument("--metric", choices=("accuracy", "f1_macro"), default="accuracy", help=metric_help)
    parser.add_argument("--seed-param", default="finetune.seed", help="the parameter seeds vary (finetune.seed)")
    parser.add_argument("--baseline", default="workspace", help="the first row: workspace or a commit's name or sha")
    parser.add_argument("--metrics-file", default="metrics/headline.json", help="metrics/headline.json")
    parser.add_argument("--params-file", default="params.yaml")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the DVC project (default: here)")
    parser.add_argument("--exp-show-json", type=Path, help="read this saved `dvc exp show --json` instead")
    args = parser.parse_args(argv)
    return run_cli(lambda: print(summary(args)), str(args.exp_show_json or args.repo))


def summary(args: argparse.Namespace) -> str:
    if args.exp_show_json is None:
        source = f"{args.repo}: `dvc exp show --json`"
        dvc = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
        result = subprocess.run(dvc, cwd=args.repo, capture_output=True, text=True)
        if result.returncode != 0:
            raise PipelineError(f"{source} failed: {' '.join((result.stderr or result.stdout).split())[-300:]}")
        text = result.stdout
    else:
        source = args.exp_show_json
        try:
            text = args.exp_show_json.read_text(encoding="utf-8")
        except OSError as exc:
            raise PipelineError(f"{source}: not readable ({exc})") from None
    try:  # the one place the JSON's shape is trusted: any other shape (DVC 2's, an edited file) is one line
        shown = json.loads(text)
        found, missing = experiments(shown, args.params_file, args.metrics_file)
        if not found:
            raise PipelineError(
                f"no experiment with {args.metrics_file} ({missing} without): queue a grid with "
                "`dvc exp run --queue -S 'finetune.learning_rate=5e-5,1e-4' -S 'finetune.seed=1,2,3'`, "
                "then `dvc queue start`"
            )
        if not any(args.seed_param in exp["params"] for exp in found):
            raise PipelineError(
                f"--seed-param {args.seed_param}: not a param of these experiments (e.g. finetune.seed)"
            )
        base = baseline(shown, args.baseline, args.params_file, args.metrics_file)
        return render(*summarise(found, base, args.seed_param, args.metric), args.metric, missing)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise PipelineError(
            f"{source}: not the shape `dvc exp show --json` of DVC 3 prints ({type(exc).__name__}: {exc})"
        ) from None
