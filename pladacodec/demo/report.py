"""The demo's report: a markdown table, a PNG plot and the raw numbers as JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["format_table", "format_report", "write_report", "plot_report"]

SCENARIO_TEXT = {
    "generic": "a generic pool: Fashion-MNIST is 5 % of it, the rest are other kinds of images "
               "(the paper's premise: a large generic reference, the target a small minority)",
    "near-domain": "a near-domain pool: 78 % of it is Fashion-MNIST (the demo's original pool, "
                   "thinned to the generic pool's size)",
    "far-ood": "a far-out-of-domain pool: no Fashion-MNIST image at all, only other kinds",
}


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def _keep(k: float) -> str:
    return "100% (all)" if k >= 1 else f"{100 * k:g}%"


def format_table(report: dict[str, Any]) -> str:
    """The results as a markdown table, one row per (budget, strategy), then the references."""
    lines = [
        "| keep | strategy | images | payload | bytes / 10k images | same, shuffled pool | in-domain | "
        "pseudo-label acc. (in-domain) | smallest class | student acc. | student / teacher |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        name = r["strategy"]
        if "auto" in r:
            name = f"auto → {r['auto']['chosen']}"
        shuffled = 10_000 * r["bytes_shuffled_pool"] / max(r["images"], 1)
        lines.append(
            f"| {_keep(r['keep'])} | {name} | {r['images']:,} | {r['bytes']:,} B | "
            f"{r['bytes_per_10k']:,.0f} | {shuffled:,.0f} | {_pct(r['in_domain'])} | "
            f"{_pct(r['label_accuracy_in_domain'])} | {min(r['class_counts']):,} | "
            f"**{_pct(r['student_accuracy'], 2)}** | {r['student_teacher_ratio']:.3f} |"
        )
    t = report["true_label_student"]
    teacher = report["teacher"]["accuracy"]
    lines.append(f"| – | student on true labels (reference point) | {t['images']:,} | – | – | – | 100.0% | "
                 f"100.0% | – | **{_pct(t['accuracy'], 2)}** | {t['accuracy'] / teacher:.3f} |")
    lines.append(f"| – | teacher | – | – | – | – | – | – | – | **{_pct(teacher, 2)}** | 1.000 |")
    return "\n".join(lines)


def format_auto(report: dict[str, Any]) -> str:
    """Each auto row's candidates: proxy accuracy (validation set) against the student's
    test accuracy for the same selection (known only in hindsight)."""
    rows = report["rows"]
    out = []
    for r in rows:
        if "auto" not in r:
            continue
        by_name = {x["strategy"]: x for x in rows if x["keep"] == r["keep"] and "auto" not in x}
        parts = []
        for cname, proxy in r["auto"]["candidates"].items():
            label = cname.replace("safety-net(alpha=", "safety-net a=").rstrip(")")
            student = by_name.get(label, {}).get("student_accuracy")
            parts.append(f"{cname} {100 * proxy:.1f}% (student {_pct(student)})")
        best = max(by_name.values(), key=lambda x: x["student_accuracy"])
        out.append(f"* keep {_keep(r['keep'])}: auto chose **{r['auto']['chosen']}**; best in hindsight "
                   f"{best['strategy']} {_pct(best['student_accuracy'], 2)}, auto "
                   f"{_pct(r['student_accuracy'], 2)} (gap {100 * (best['student_accuracy'] - r['student_accuracy']):.2f} "
                   f"points). Proxy accuracy by candidate: " + "; ".join(parts) + ".")
    return "\n".join(out)


def _format_timings(tim: dict[str, float]) -> str:
    """``phase N s`` per phase; a phase's parts (keys ``phase/part``) in brackets after it."""
    parts: dict[str, list[str]] = {}
    for k, v in tim.items():
        if "/" in k:
            phase, part = k.split("/", 1)
            parts.setdefault(phase, []).append(f"{part} {v:.0f} s")
    return ", ".join(f"{k} {v:.0f} s" + (f" ({', '.join(parts[k])})" if k in parts else "")
                     for k, v in tim.items() if k != "total" and "/" not in k)


def format_report(report: dict[str, Any]) -> str:
    cfg = report["config"]
    pool = report["pool"]
    tim = report["timings"]
    sources = ", ".join(f"{k} {v:,}" for k, v in pool["sources"].items())
    energies = ", ".join(f"{k} {v:.2f}" for k, v in pool["median_energy_by_source"].items())
    scenario = report.get("scenario", cfg.get("scenario", "generic"))
    return "\n".join([
        f"# PLADA demo report: {scenario} scenario" + (" (quick mode)" if cfg["quick"] else ""),
        "",
        f"Target task: Fashion-MNIST, {len(report['target']['classes'])} classes; the teacher learns from "
        f"{report['target']['n_train']:,} labelled training images; `auto` looks at "
        f"{report['target']['n_val']:,} labelled validation images; every accuracy is on "
        f"{report['target']['n_test']:,} held-out test images.",
        f"Reference pool (client side, unlabelled): {SCENARIO_TEXT.get(scenario, scenario)}. "
        f"{pool['n']:,} images, {100 * pool['in_domain_share']:.1f}% in-domain: {sources}.",
        f"Median teacher energy by source (lower = more confident): {energies}.",
        f"Teacher: {report['teacher']['model']}. Student: {report['student']['model']}; init "
        f"{report['student']['init']}; AdamW lr 1e-3, weight decay 0.05, cosine, batches of "
        f"{cfg['batch_size']}, {cfg['epochs']} epoch(s) but at least {cfg['min_steps']} and at most "
        f"{cfg.get('max_steps', '–')} steps (no pruning trains longest, on a random part of the pool when "
        f"the cap bites), precise BN. Safety-Net: {_pct(cfg['safety_net'], 0)} of the slots "
        f"reserved for class quotas K_c ∝ N_c^α.",
        "",
        format_table(report),
        "",
        format_auto(report),
        "",
        f"Wall time {tim['total']:.0f} s on {report['device']} ({report['torch_threads']} torch threads, "
        f"{report['cpu_count']} CPUs, load average {report.get('load_average_at_start') or float('nan'):.1f} at start): "
        + _format_timings(tim) + ".",
        "",
        "Columns: *in-domain* is the share of selected images that are Fashion-MNIST pictures; "
        "*pseudo-label acc.* is how often the teacher's label is right on those; *smallest class* "
        "counts the images of the rarest label sent. These three use the pool's hidden provenance, "
        "which no strategy sees. *payload* is the whole `.plada` file; *same, shuffled pool* is "
        "what the selection would take if the pool were not sorted by source.",
        "",
        "![student accuracy against payload bytes](report.png)",
        "",
    ])


def plot_report(report: dict[str, Any], path: str | Path) -> None:
    """Student accuracy against payload bytes (log x), one line per strategy across budgets,
    the no-pruning point, the teacher and the true-label student as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    names = list(dict.fromkeys(r["strategy"] for r in rows))
    markers = "osD^vPX*"
    for j, name in enumerate(names):
        pts = sorted((r["bytes"], 100 * r["student_accuracy"], r["keep"]) for r in rows if r["strategy"] == name)
        xs, ys, ks = zip(*pts)
        if name == "no pruning":
            ax.scatter(xs, ys, marker="*", s=160, color="k", zorder=5, label="no pruning (all pool images)")
        else:
            ax.plot(xs, ys, marker=markers[j % len(markers)], lw=1.2, ms=5,
                    ls="--" if name == "auto" else "-", label=name)
        for x, y, k in pts:
            ax.annotate(f"{100 * k:g}%", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6)
    ax.axhline(100 * report["teacher"]["accuracy"], color="k", ls="--", lw=1, label="teacher")
    ax.axhline(100 * report["true_label_student"]["accuracy"], color="gray", ls=":", lw=1.5,
               label="student on true labels")
    ax.set_xscale("log")
    ax.set_xlabel("payload (bytes, .plada file)")
    ax.set_ylabel("student test accuracy (%)")
    ax.set_title(f"PLADA demo, {report.get('scenario', 'generic')} pool: accuracy vs payload")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: str | Path) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(format_report(report))
    plot_report(report, out / "report.png")
