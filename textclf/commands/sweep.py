"""``textclf sweep``: summarise a sweep of DVC experiments, mean ± spread over seeds per configuration.

    dvc exp run --queue -S 'finetune.learning_rate=5e-5,1e-4' -S 'finetune.seed=1,2,3'
    dvc queue start                      # runs the 6 experiments; `dvc queue status` shows them
    textclf sweep                        # one row per learning rate: mean ± spread of its 3 seeds

Rows group the experiments of ``dvc exp show --json`` by every param but the seed, after the baseline
(the workspace or ``--baseline REV``); the best by mean validation ``--metric`` is marked (test never chooses).
"""

from __future__ import annotations

import argparse
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
SPLITS_SHOWN = (("validation", "val"), ("test", "test"))  # the headline's keys: val_accuracy, test_f1_macro, ...
COLUMNS = [(split, name) for split, _ in SPLITS_SHOWN for name in ("accuracy", "f1_macro")]


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"finetune": {"seed": 1}}`` -> ``{"finetune.seed": 1}`` (lists stay values)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat.update(flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


def by_split(metrics: dict) -> dict:
    """``{"validation": {"accuracy": ...}, ...}`` from the headline's flat keys (``val_accuracy``, ...), or as it is."""
    if any(isinstance(metrics.get(split), dict) for split, _ in SPLITS_SHOWN):
        return metrics
    return {
        split: {name: metrics[f"{prefix}_{name}"] for name in ("accuracy", "f1_macro") if f"{prefix}_{name}" in metrics}
        for split, prefix in SPLITS_SHOWN
    }


def _files(rev: dict, params_file: str, metrics_file: str) -> tuple[dict | None, dict | None]:
    """The params and metrics of one ``dvc exp show`` entry (None: not there)."""
    data = rev.get("data") or {}
    return tuple(
        ((data.get(kind) or {}).get(name) or {}).get("data")
        for kind, name in (("params", params_file), ("metrics", metrics_file))
    )


def baseline(shown: list[dict], rev: str, params_file: str, metrics_file: str) -> dict:
    """The workspace, or a commit ``dvc exp show`` lists (by branch or tag name, or the start of its sha)."""
    for commit in shown:
        names = {commit.get("rev") or "", commit.get("name") or ""}
        if rev in names or (len(rev) >= 7 and (commit.get("rev") or "").startswith(rev)):
            params, metrics = _files(commit, params_file, metrics_file)  # no metrics yet: its row shows "-"
            return {"name": rev, "params": flatten(params or {}), "metrics": by_split(metrics or {})}
    raise PipelineError(f"baseline {rev}: not the workspace or a commit `dvc exp show` lists (a branch, tag or sha)")


def experiments(shown: list[dict], params_file: str, metrics_file: str) -> tuple[list[dict], int]:
    """(experiments with metrics as ``{"name", "params", "metrics"}``, count of those without) from
    ``dvc exp show --json``: the experiments under each commit, not the commits or the workspace."""
    found, missing = [], 0
    for commit in shown:
        for group in commit.get("experiments") or []:
            # a queued or running experiment shows its parent commit's metrics files: not its results
            if ((group.get("executor") or {}).get("state") or "success") != "success":
                missing += len(group.get("revs") or [])
                continue
            for rev in group.get("revs") or []:
                params, metrics = _files(rev, params_file, metrics_file)
                if not params or not metrics:
                    missing += 1
                    continue
                name = rev.get("name") or rev.get("rev", "")[:7]
                found.append({"name": name, "params": flatten(params), "metrics": by_split(metrics)})
    return found, missing


def summarise(
    found: list[dict], seed_param: str, metric: str, base: dict | None = None
) -> tuple[list[str], list[dict]]:
    """(the params that tell configurations apart, one row per configuration: each metric's mean and spread
    over its seeds), the baseline's row (a single run, never marked best) first."""
    runs = found + ([base] if base else [])
    keys = sorted({key for exp in runs for key in exp["params"]} - {seed_param})
    varying = [k for k in keys if len({json.dumps(e["params"].get(k), sort_keys=True) for e in runs}) > 1]
    groups: dict[tuple, list[dict]] = {}
    for exp in found:
        groups.setdefault(tuple(json.dumps(exp["params"].get(k), sort_keys=True) for k in keys), []).append(exp)

    def row(members: list[dict]) -> dict:
        out = {"config": {k: members[0]["params"].get(k) for k in varying}, "n": len(members)}
        for split, name in COLUMNS:
            values = [v for m in members if isinstance(v := m["metrics"].get(split, {}).get(name), (int, float))]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            out[f"{split}.{name}"] = (statistics.fmean(values), spread) if values else None
        return out

    rows = [row(members) for members in groups.values()]
    rows.sort(key=lambda r: [json.dumps(r["config"][k], sort_keys=True) for k in varying])
    scored = [r for r in rows if r[f"validation.{metric}"] is not None]
    if scored:
        max(scored, key=lambda r: r[f"validation.{metric}"][0])["best"] = True
    if base:
        rows.insert(0, {**row([base]), "baseline": base["name"]})
    return varying, rows


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
    """The value of each key that more than half of the experiments' configurations share."""
    rows = [r for r in rows if "baseline" not in r] or rows  # shared by the experiments
    tops = {k: Counter(json.dumps(r["config"][k], sort_keys=True) for r in rows).most_common(1)[0] for k in varying}
    return {k: json.loads(value) for k, (value, count) in tops.items() if count * 2 > len(rows)}


def render(varying: list[str], rows: list[dict], metric: str, missing: int) -> str:
    """The table, at most ``WIDTH`` columns: configuration, runs, mean±spread of each metric."""
    short = short_names(varying)
    common = common_values(varying, rows)

    def cell(ms: tuple[float, float] | None, n: int) -> str:  # one run: no spread to show
        return "-" if ms is None else f"{ms[0]:.4f}" + (f"±{ms[1]:.4f}" if n > 1 else "")

    def config(r: dict) -> str:
        shown = [terminal(f"{short[k]}={v}") for k, v in r["config"].items() if k not in common or v != common[k]]
        text = " ".join(shown) or "(common values)"
        return f"{terminal(r['baseline'])}: {text}" if "baseline" in r else text

    columns = [f"{label} {name}" for _, label in SPLITS_SHOWN for name in ("acc", "F1m")]
    cells = [[cell(r[f"{split}.{name}"], r["n"]) for split, name in COLUMNS] for r in rows]
    configs = [config(r) for r in rows]
    width = max(len(c) for c in columns + [c for row in cells for c in row])
    config_width = min(max(len(c) for c in configs + ["configuration"]), WIDTH - 2 - 4 - len(columns) * (width + 1))
    fit = lambda text: text if len(text) <= config_width else text[: config_width - 1] + "…"  # noqa: E731
    lines = [f"  {'configuration':<{config_width}} {'n':>3} " + " ".join(f"{c:>{width}}" for c in columns)]
    for row, config, values in zip(rows, configs, cells, strict=True):
        mark = "* " if row.get("best") else "  "
        lines.append(f"{mark}{fit(config):<{config_width}} {row['n']:>3} " + " ".join(f"{v:>{width}}" for v in values))
    if rows and "baseline" in rows[0]:
        lines.append(f"first row: the baseline, {terminal(rows[0]['baseline'])} (one run); then the experiments")
    lines.append(f"* best mean validation {metric} (test is shown, never used to choose); mean±sample std over seeds")
    if common:
        lines += textwrap.wrap(
            "common values: " + ", ".join(terminal(f"{short[k]}={v}") for k, v in common.items()), WIDTH
        )
    if missing:
        lines.append(f"({missing} experiment(s) without metrics left out: queued, running or failed)")
    return "\n".join(lines)


def exp_show(repo: Path) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo, capture_output=True, text=True
    )
    if result.returncode != 0:
        detail = " ".join((result.stderr or result.stdout).split())[-300:]
        raise PipelineError(f"{repo}: `dvc exp show --json` failed: {detail}")
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise PipelineError(f"{repo}: `dvc exp show --json` printed no JSON (is this a DVC project?)") from None


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
    """The table for ``textclf sweep``'s arguments."""
    source = args.exp_show_json or f"{args.repo}: `dvc exp show --json`"
    if args.exp_show_json is None:
        shown = exp_show(args.repo)
    else:
        try:
            shown = json.loads(args.exp_show_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PipelineError(f"{args.exp_show_json}: not a readable `dvc exp show --json` file ({exc})") from None
    try:  # the one place the JSON's shape is trusted: any other shape (DVC 2's, an edited file) is one line
        return _summary(args, shown)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise PipelineError(
            f"{source}: not the shape `dvc exp show --json` of DVC 3 prints ({type(exc).__name__}: {exc})"
        ) from None


def _summary(args: argparse.Namespace, shown: object) -> str:
    found, missing = experiments(shown, args.params_file, args.metrics_file)
    if not found:
        raise PipelineError(
            f"no experiment with {args.metrics_file} ({missing} without): queue a grid with "
            "`dvc exp run --queue -S 'finetune.learning_rate=5e-5,1e-4' -S 'finetune.seed=1,2,3'`, "
            "then `dvc queue start`"
        )
    if not any(args.seed_param in exp["params"] for exp in found):
        raise PipelineError(f"--seed-param {args.seed_param}: not a param of these experiments (e.g. finetune.seed)")
    base = baseline(shown, args.baseline, args.params_file, args.metrics_file)
    varying, rows = summarise(found, args.seed_param, args.metric, base)
    return render(varying, rows, args.metric, missing)
