"""Writing tables and figures to disk, each table headed by its provenance (command, date, machine,
threads, software versions)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def save_table(df: pd.DataFrame, stem: str | Path, note: str = "") -> list[Path]:
    """Write ``stem.csv`` and ``stem.md`` (``note``, e.g. the command and machine, heads the
    Markdown) and return their paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    df.to_csv(csv, index=False, float_format="%.4f")
    md.write_text((note + "\n\n" if note else "") + df.to_markdown(index=False, floatfmt=".3f") + "\n")
    return [csv, md]


def provenance(command: str) -> str:
    """One Markdown paragraph: the command, when (UTC), the machine, threads and software versions."""
    import datetime
    import os
    import platform

    import torch

    from ..train import select_device

    device = select_device()
    where = (torch.cuda.get_device_name(0) if device.type == "cuda" else
             f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, "
             f"{torch.get_num_threads()} torch threads")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Produced by `{command}` on {when}: device {device} ({where}), torch "
            f"{torch.__version__}, Python {platform.python_version()}.")


def save_figures(figs: dict, out: str | Path) -> list[Path]:
    """Save each figure as PNG and PDF under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        for ext in ("png", "pdf"):
            paths.append(out / f"{name}.{ext}")
            fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
    return paths
