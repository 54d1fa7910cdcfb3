"""Plot a metric from a :class:`JsonlLogger` file to a PNG (extra ``recipes``)."""

import json
import math
from pathlib import Path

from torchtune.utils import require


def read_metric(jsonl_path: str | Path, key: str = "loss") -> tuple[list[int], list[float]]:
    """Return ``(steps, values)`` of ``key`` from a JSONL metrics file.

    Lines without ``key`` are skipped; ``"nan"``/``"inf"`` strings become floats.

    Raises:
        ValueError: when a line is not JSON (naming ``file:line``) or no line has ``key``.
    """
    steps: list[int] = []
    values: list[float] = []
    with open(jsonl_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{jsonl_path}:{lineno}: not a JSON object: {e.msg}") from None
            if key in record:
                steps.append(int(record["step"]))
                values.append(float(record[key]))
    if not steps:
        raise ValueError(f"{jsonl_path} has no '{key}' values to plot")
    return steps, values


def plot_loss(jsonl_path: str | Path, png_path: str | Path, key: str = "loss") -> Path:
    """Write a line plot of ``key`` against step from a JSONL metrics file.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change).

    Args:
        jsonl_path (str | Path): the file written by :class:`JsonlLogger`.
        png_path (str | Path): the PNG to write.
        key (str): the metric to plot. Default: ``"loss"``.

    Returns:
        Path: ``png_path``.

    Raises:
        ModuleNotFoundError: when matplotlib is missing (``pip install 'torchtune[recipes]'``).
        ValueError: see :func:`read_metric`.
    """
    require("matplotlib", extra="recipes")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps, values = read_metric(jsonl_path, key)
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(steps, [v if math.isfinite(v) else float("nan") for v in values])
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, format="png")
    return png_path
