"""Variable-width text lines: padding a batch to one width, and line widths read from image headers.

Lines keep their aspect ratio (:class:`~seq2seq_lab.data.ocr.transforms.LineImageTransform`),
so the images of a batch differ in width. :func:`batch_width` picks the width a
batch is padded to (its widest image, rounded up to a multiple of 4, at most the
maximum width) and :func:`pad_images` pads each image on the right by repeating
its last column, so the padding looks like the line's own background;
:func:`pad_batch` does both, for the data module's collate and for ``predict``.
:func:`header_size` reads an image's size without decoding it, for bucketing
samples by width.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import torch
from PIL import Image

from seq2seq_lab.deploy.runtime import WIDTH_MULTIPLE, batch_width, displayed_size, pad_lines

__all__ = ["WIDTH_MULTIPLE", "batch_width", "header_size", "pad_batch", "pad_images"]

def pad_images(images: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """Images ``(C, H, w_i)`` with ``w_i <= width`` -> ``(B, C, H, width)``, each padded on the
    right with copies of its last column (:func:`~seq2seq_lab.deploy.runtime.pad_lines`)."""
    return torch.from_numpy(pad_lines([image.numpy() for image in images], width))


def pad_batch(images: Sequence[torch.Tensor], max_width: int | None = None, fixed_width: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(C, H, w_i)`` -> ``(B, C, H, W)`` padded to :func:`batch_width` (``fixed_width``:
    to ``max_width``), and their widths ``(B,)`` long (``w_i``, the valid columns of each row)."""
    if fixed_width and max_width is None:
        raise ValueError("fixed_width needs max_width")
    widths = [image.size(-1) for image in images]
    width = max_width if fixed_width else batch_width(widths, max_width)
    return pad_images(images, width), torch.tensor(widths, dtype=torch.long)


def header_size(load: Callable[[], bytes]) -> tuple[int, int] | None:
    """``(width, height)`` of the image ``load`` gives, as displayed (EXIF rotation applied), read
    from its header: a file loader's ``path`` is opened (Pillow reads only the header), other
    loaders (LMDB) are read. None when the header cannot be read; decoding errors are left to
    the dataset, which reports them by its bad-sample policy.

    An EXIF block stored after the pixel data (possible in PNG) is not seen, so the size may
    be transposed for such an image: it only places the sample in a bucket.
    """
    path = getattr(load, "path", None)
    try:
        with Image.open(path if path is not None else io.BytesIO(load())) as img:
            return displayed_size(img)
    except Exception:  # noqa: BLE001 - missing files and every Pillow error: the dataset reports them
        return None
