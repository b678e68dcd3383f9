"""The demo's report: a markdown table, a PNG plot and the raw numbers as JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["format_table", "format_report", "write_report", "plot_report"]


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def format_table(report: dict[str, Any]) -> str:
    """The results as a markdown table, one row per (budget, strategy), then the references."""
    lines = [
        "| keep | strategy | images | payload | bytes / 10k images | same, shuffled pool | in-domain | "
        "pseudo-label acc. (in-domain) | smallest class | student acc. |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {_pct(r['keep'], 0)} | {r['strategy']} | {r['images']:,} | {r['bytes']:,} B | "
            f"{r['bytes_per_10k']:,.0f} | {r['bytes_per_10k_shuffled_pool']:,.0f} | {_pct(r['in_domain'])} | {_pct(r['label_accuracy_in_domain'])} | "
            f"{min(r['class_counts']):,} | **{_pct(r['student_accuracy'], 2)}** |"
        )
    t = report["true_label_student"]
    lines.append(f"| – | true labels (reference point) | {t['images']:,} | – | – | – | 100.0% | 100.0% | – | "
                 f"**{_pct(t['accuracy'], 2)}** |")
    lines.append(f"| – | teacher ({report['teacher']['model']}) | – | – | – | – | – | – | – | "
                 f"**{_pct(report['teacher']['accuracy'], 2)}** |")
    return "\n".join(lines)


def format_report(report: dict[str, Any]) -> str:
    cfg = report["config"]
    pool = report["pool"]
    tim = report["timings"]
    sources = ", ".join(f"{k} {v:,}" for k, v in pool["sources"].items())
    energies = ", ".join(f"{k} {v:.2f}" for k, v in pool["median_energy_by_source"].items())
    return "\n".join([
        "# PLADA demo report" + (" (quick mode)" if cfg["quick"] else ""),
        "",
        f"Target task: Fashion-MNIST, {len(report['target']['classes'])} classes; the teacher sees "
        f"{report['target']['n_train']:,} labelled training images; every accuracy is on "
        f"{report['target']['n_test']:,} held-out test images.",
        f"Reference pool (client side, unlabelled): {pool['n']:,} images: {sources}.",
        f"Median teacher energy by source (lower = more confident): {energies}.",
        f"Student: timm `{cfg['student']}` from scratch, AdamW lr 1e-3, cosine, "
        f"whole epochs, at least {cfg['epochs']} and at least {cfg['min_steps']} steps of "
        f"{cfg['batch_size']} images (so every student gets about the same compute). "
        f"Safety-Net: {_pct(cfg['safety_net'], 0)} of the slots reserved for class quotas, "
        f"alpha {cfg['alpha']}.",
        "",
        format_table(report),
        "",
        f"Wall time {tim['total']:.0f} s on {report['device']} ({report['torch_threads']} torch threads, "
        f"{report['cpu_count']} CPUs, load average {report.get('load_average_at_start') or float('nan'):.1f} at start): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in tim.items() if k != "total") + ".",
        "",
        "Columns: *in-domain* is the share of selected images that are Fashion-MNIST pictures "
        "(the rest are digits, faces and clip-art); *pseudo-label acc.* is how often the teacher's "
        "label is right on those; *smallest class* counts the images of the rarest label sent. "
        "These three use the pool's hidden provenance, which no strategy sees.",
        "",
        "![student accuracy by strategy and budget](report.png)",
        "",
    ])


def plot_report(report: dict[str, Any], path: str | Path) -> None:
    """Grouped bars: student accuracy per strategy, one group per budget, reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    keeps = sorted({r["keep"] for r in rows})
    names = list(dict.fromkeys(r["strategy"] for r in rows))
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        xs, ys, labels = [], [], []
        for i, keep in enumerate(keeps):
            r = next((r for r in rows if r["keep"] == keep and r["strategy"] == name), None)
            if r is not None:
                xs.append(i + (j - (len(names) - 1) / 2) * width)
                ys.append(100 * r["student_accuracy"])
                labels.append(f"{r['bytes']:,} B")
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, labels=[f"{y:.1f}" for y in ys], fontsize=7, padding=2)
    ax.axhline(100 * report["teacher"]["accuracy"], color="k", ls="--", lw=1, label="teacher")
    ax.axhline(100 * report["true_label_student"]["accuracy"], color="gray", ls=":", lw=1.5,
               label="student on true labels")
    ax.set_xticks(range(len(keeps)))
    ax.set_xticklabels([
        f"keep {100 * k:g}% ({next(r['images'] for r in rows if r['keep'] == k):,} images)" for k in keeps
    ])
    ax.set_ylabel("student test accuracy (%)")
    lo = min(100 * r["student_accuracy"] for r in rows)
    ax.set_ylim(max(0, lo - 10), 100)
    ax.set_title("PLADA demo: Fashion-MNIST task sent as pseudo-labels on a mixed pool")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: str | Path) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(format_report(report))
    plot_report(report, out / "report.png")
