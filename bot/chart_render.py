"""`python -m bot.chart_render`: a chart spec as JSON on stdin, its PNG on stdout (see
bot/charts.py, which runs this in a child process)."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: draw to a file

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402


def draw(spec: dict[str, Any]) -> bytes:
    labels = [str(label) for label in spec["labels"]]
    values = [float(v) for v in spec["values"]]
    figure, axes = plt.subplots(figsize=(max(6.0, 0.45 * len(labels) + 2), 3.2), dpi=120)
    axes.bar(range(len(values)), values, color="#c0392b")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axes.set_title(str(spec.get("title", ""))[:120], fontsize=10)
    axes.set_ylabel(str(spec.get("ylabel", "")))
    axes.set_xlabel(str(spec.get("xlabel", "")))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 2.5 alerts
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    plt.close(figure)
    return out.getvalue()


def main() -> int:
    spec = json.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(draw(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
