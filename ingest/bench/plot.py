"""``ingest bench --plot FILE.png``: throughput and latency bars of one report.

Optional: matplotlib comes with the ``bench`` extra (``pip install
'ingest[bench]'``); everything else in ``ingest bench`` works without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def check_available() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise PlotUnavailable("needs matplotlib (pip install 'ingest[bench]')") from e


def _short(label: str) -> str:
    return label.replace("ingest listen ", "ingest ").replace(", count only", "")


def plot(rep: dict, path: str | Path) -> None:
    """Write a PNG of rep (a run_bench report) to path."""
    check_available()
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    panels: list[str] = []
    if rep.get("rows"):
        panels.append("alertpkt")
    if rep.get("latency"):
        panels.append("latency")
    if rep.get("unified2"):
        panels.append("unified2")
    if rep.get("loss"):
        panels.append("loss")
    if not panels:
        raise ValueError("nothing to plot in this report")
    # the loss panel has a bar per row: give it room in proportion
    heights = [max(1.0, len(rep["loss"]["rows"]) / 8) if p == "loss" else 1.0 for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        if panel == "alertpkt":
            rows = rep["rows"]
            names = [_short(r["label"]) for r in rows]
            vals = [r["alerts_per_s"] / 1e3 for r in rows]
            bars = ax.barh(names, vals, color=colors[: len(rows)])
            ax.bar_label(bars, [f"{v:,.1f} k" for v in vals], padding=3, fontsize=8)
            ax.set_xlabel("k alerts/s (best of runs)")
            ax.set_title(f"{rep['kind']} Alertpkt ({rep['datagram_bytes']} B) end to end, "
                         f"{rep['send_mode']} sender")
            ax.invert_yaxis()
            ax.margins(x=0.15)
        elif panel == "latency":
            lat = rep["latency"]
            rates = lat["rates"]
            recvs: list[str] = []
            for r in lat["rows"]:
                if r["label"] not in recvs:
                    recvs.append(r["label"])
            by: dict[tuple[str, float], Any] = {(r["label"], r["rate"]): r for r in lat["rows"]}
            width = 0.8 / max(1, len(recvs))
            for i, name in enumerate(recvs):
                xs = [k + i * width for k in range(len(rates))]
                p99 = [by[(name, rt)]["p99_ms"] if (name, rt) in by else 0 for rt in rates]
                p50 = [by[(name, rt)]["p50_ms"] if (name, rt) in by else 0 for rt in rates]
                ax.bar(xs, p99, width, color=colors[i % len(colors)], alpha=0.45)
                ax.bar(xs, p50, width, color=colors[i % len(colors)], label=_short(name))
                for x, v in zip(xs, p99, strict=True):
                    ax.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
            ax.set_xticks([k + width * (len(recvs) - 1) / 2 for k in range(len(rates))],
                          [f"{rt:,.0f} alerts/s" for rt in rates])
            ax.set_ylabel("ms (solid p50, light p99)")
            ax.set_title("latency, send -> sink has it (peers: on receipt)")
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        elif panel == "unified2":
            u2 = rep["unified2"]
            names = [_short(r["label"]) for r in u2["rows"]]
            vals = [r["events_per_s"] / 1e6 for r in u2["rows"]]
            bars = ax.barh(names, vals, color=colors[1: 1 + len(vals)])
            ax.bar_label(bars, [f"{v:,.2f} M" for v in vals], padding=3, fontsize=8)
            ax.set_xlabel("M events/s (best of runs)")
            ax.set_title(f"Unified2 spool file, {u2['alerts']:,} events")
            ax.invert_yaxis()
            ax.margins(x=0.15)
        else:
            loss = rep["loss"]
            groups: list[str] = []
            vals = []
            tints = []
            labels: list[str] = []
            for r in loss["rows"]:
                if r["label"] not in labels:
                    labels.append(r["label"])
                tints.append(colors[labels.index(r["label"]) % len(colors)])
                rate = f"{r['rate'] / 1e3:,.0f}k/s"
                groups.append(f"{r.get('datagram_bytes', '')} B q{r['qlen']} {rate} "
                              f"{_short(r['label'])[:14]}")
                vals.append(r["loss_pct"])
            bars = ax.barh(groups, vals, color=tints)
            ax.bar_label(bars, [f"{v:.1f} %" for v in vals], padding=3, fontsize=7)
            ax.set_xlabel("% dropped by the non-blocking sender")
            ax.set_title("loss, Suricata live-mode semantics")
            ax.tick_params(axis="y", labelsize=7)
            ax.invert_yaxis()
            ax.set_xlim(0, max(vals + [1.0]) * 1.2)
    fig.suptitle(f"ingest bench, {rep['machine']['nproc']} cores, Linux "
                 f"{rep['machine']['kernel']}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_size_inches()[1]))
    fig.savefig(path, dpi=110)
    plt.close(fig)
