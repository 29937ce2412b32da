"""Matplotlib figures of inputs, attention and confusion matrices (for TensorBoard and notebooks)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch


# fonts that draw Chinese (the first is what `make fonts` installs), tried after DejaVu Sans
CJK_FAMILIES = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK JP",
                "Droid Sans Fallback")


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _add_cjk_fallback()
    return plt


@functools.cache
def _add_cjk_fallback() -> None:
    """Let titles and tick labels draw CJK text: the installed CJK families become per-glyph
    fallbacks of the default font (matplotlib >= 3.6), instead of boxes and a warning per glyph.
    Families with a regular (400) face where there are any: matplotlib logs a warning each time it
    falls back from "normal" to another weight (WenQuanYi Zen Hei has only 500)."""
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    fonts = font_manager.fontManager.ttflist
    regular = [name for name in CJK_FAMILIES if any(f.name == name and f.weight in (400, "normal") for f in fonts)]
    cjk = regular or [name for name in CJK_FAMILIES if any(f.name == name for f in fonts)]
    if cjk:
        plt.rcParams["font.family"] = ["DejaVu Sans", *cjk]


def as_image(x: torch.Tensor) -> torch.Tensor:
    """One input as a 2-D image: ``(T, F)`` as is, ``(C, H, W)`` as its first (or mean) channel ``(H, W)``."""
    x = x.detach().float().cpu()
    if x.dim() == 3:
        x = x[0] if x.size(0) == 1 else x.mean(0)
    return x.reshape(x.size(0), -1) if x.dim() != 2 else x


def attention_figure(
    inputs: torch.Tensor,
    attention: torch.Tensor,
    steps: Sequence[Sequence[str]] | None = None,
    titles: Sequence[str] | None = None,
):
    """One row per sample: the input and its attention ``(L, T')`` (decoder steps x encoder positions).

    Args:
        inputs: ``(N, T, F)`` or ``(N, C, H, W)``.
        attention: ``(N, L, T')``.
        steps: labels of the ``L`` decoder steps of each sample (predicted characters...).
        titles: one per sample.
    """
    plt = _plt()
    n = attention.size(0)
    fig, axes = plt.subplots(n, 2, figsize=(7.5, 2.2 * n + 0.3), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.6]})
    for i in range(n):
        image = as_image(inputs[i])
        axes[i, 0].imshow(image, cmap="gray", aspect="auto")
        axes[i, 0].set_title(titles[i] if titles else f"sample {i}", fontsize=8)
        axes[i, 0].set_xticks([])
        axes[i, 0].set_ylabel("input position", fontsize=7)
        weights = attention[i].float().cpu()
        axes[i, 1].imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, interpolation="nearest")
        axes[i, 1].set_xlabel("encoder position", fontsize=7)
        axes[i, 1].set_ylabel("decoder step", fontsize=7)
        if steps is not None and len(steps[i]) == weights.size(0) and weights.size(0) <= 40:
            axes[i, 1].set_yticks(range(weights.size(0)), list(steps[i]), fontsize=6)
        axes[i, 1].tick_params(labelsize=6)
    fig.tight_layout()
    return fig


def samples_figure(inputs: torch.Tensor, truths: Sequence[str], preds: Sequence[str], columns: int = 4):
    """A grid of inputs titled ``true / predicted`` (red when wrong)."""
    plt = _plt()
    n = len(truths)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    first = as_image(inputs[0])
    wide = first.size(1) > 2 * first.size(0)  # text lines
    fig, axes = plt.subplots(rows, cols, figsize=(cols * (3.2 if wide else 1.8), rows * (1.2 if wide else 2.0)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(as_image(inputs[k]), cmap="gray", aspect="auto")
        ok = truths[k] == preds[k]
        ax.set_title(f"{truths[k]} / {preds[k]}", fontsize=8, color="black" if ok else "red")
    fig.tight_layout()
    return fig


def confusion_figure(matrix: torch.Tensor, class_names: Sequence[str] | None = None, normalize: bool = True):
    """``matrix (C, C)`` counts, rows true and columns predicted; cells show the count, colour the row share."""
    plt = _plt()
    counts = matrix.detach().cpu().long()
    share = counts.float() / counts.sum(1, keepdim=True).clamp(min=1) if normalize else counts.float()
    c = counts.size(0)
    names = list(class_names) if class_names else [str(i) for i in range(c)]
    fig, ax = plt.subplots(figsize=(0.35 * c + 1.8, 0.35 * c + 1.4))
    ax.imshow(share, cmap="Blues", vmin=0.0)
    if c <= 30:
        for i in range(c):
            for j in range(c):
                if counts[i, j]:
                    dark = share[i, j] > 0.5 * float(share.max())
                    ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=6,
                            color="white" if dark else "black")
        ax.set_xticks(range(c), names, fontsize=7)
        ax.set_yticks(range(c), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = float(counts.diag().sum()) / max(1, int(counts.sum()))
    ax.set_title(f"accuracy {acc:.4f}", fontsize=9)
    fig.tight_layout()
    return fig
