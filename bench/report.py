"""The benchmark's printed table (also stored, line by line, under ``table`` in the JSON)."""

from __future__ import annotations


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def _speeds(step: dict) -> tuple[str, str, str]:
    return _fmt(step["notebook_rows_per_s"]), _fmt(step["pipeline_rows_per_s"]), _fmt(step["ratio"], ".2f")


def table_rows(steps: dict) -> list[tuple[str, str, str, str, str]]:
    """(step, notebook rows/s, pipeline rows/s, ratio, quality) for each measured step, header first."""
    a, b, c = steps["hidden_states"], steps["logistic_regression"], steps["finetune_throughput"]
    q = a["quality"]
    rows = [("step", "notebook rows/s", "pipeline rows/s", "ratio", "quality")]
    rows.append(
        (
            "A tokenize",
            _fmt(a["notebook"]["tokenize_rows_per_s"]),
            _fmt(a["pipeline"]["tokenize_rows_per_s"]),
            _fmt(a["tokenize_ratio"], ".2f"),
            "",
        )
    )
    rows.append(
        (
            "A hidden states",
            *_speeds(a),
            f"LR val acc nb-feat {q['notebook_features_validation_accuracy']:.4f} / "
            f"ours {q['pipeline_features_validation_accuracy']:.4f}; "
            f"max|diff| {q['max_abs_diff']:.2g}, cos {q['mean_cosine_similarity']:.5f}",
        )
    )
    rows.append(
        (
            "B logreg fit",
            *_speeds(b),
            f"fit {b['notebook']['fit_s']:.2f}s / {b['pipeline']['fit_s']:.2f}s; "
            f"val acc {b['notebook']['validation_accuracy']:.4f} / {b['pipeline']['validation_accuracy']:.4f}",
        )
    )
    rows.append(
        (
            "C fine-tune steps",
            *_speeds(c),
            f"padding {c['notebook']['padding_fraction']:.0%} / {c['pipeline']['padding_fraction']:.0%}",
        )
    )
    d = steps.get("finetune_quality")
    if d is None:
        rows.append(("C fine-tune quality", "-", "-", "-", "skipped (--skip-quality)"))
    else:
        rows.append(
            (
                "C fine-tune quality",
                *_speeds(d),
                f"{d['epochs']:g} ep: {d['notebook']['train_s']:.1f}s / {d['pipeline']['train_s']:.1f}s; "
                f"val acc {d['notebook']['validation_accuracy']:.4f} / {d['pipeline']['validation_accuracy']:.4f}",
            )
        )
    return rows


def format_table(steps: dict) -> str:
    """The steps as an aligned text table: names left, figures right, quality notes last."""
    rows = table_rows(steps)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join([r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in (1, 2, 3)] + [r[4]]).rstrip() for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
