"""Shared fixtures: tiny data sets the tests write themselves (never the real MNIST)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from entry_points import EntryPoints
from ocr_fakes import installed_cjk_faces, write_text_lines
from seq2seq_lab.data.mnist.idx import write_idx

if os.environ.get("PYTEST_XDIST_WORKER"):  # one of `pytest -n N`'s workers: a core each, for it and what it starts
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def write_fake_mnist(root: Path, n_train: int = 5600, n_test: int = 200, seed: int = 0) -> Path:
    """Write learnable fake MNIST IDX files under ``root/mnist``: each label draws a bar at its own row."""
    rng = np.random.default_rng(seed)
    mnist = root / "mnist"
    mnist.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, y in enumerate(labels):
            images[i, 2 + 2 * y : 4 + 2 * y, 4:24] = 255
        write_idx(mnist / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(mnist / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture(scope="session")
def fake_data_dir(tmp_path_factory) -> Path:
    """A data dir holding fake MNIST in ``mnist/`` and a tiny OCR corpus (list files, charset) in ``ocr/``."""
    root = write_fake_mnist(tmp_path_factory.mktemp("data"))
    write_text_lines(root / "ocr", charset="abcde0123", length=4)
    return root


@pytest.fixture
def offline(monkeypatch):
    """No S2S_DATA_DIR leaking in from the user's environment, and no network."""
    monkeypatch.delenv("S2S_DATA_DIR", raising=False)

    def no_network(url, timeout=None):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


@pytest.fixture
def one_thread():
    """One intra-op thread: small models are as fast so, and immune to a busy shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def entry_points():
    """Runs of ``python -m seq2seq_lab.<module>``, forked from a process that has imported them (tests/entry_points.py)."""
    server = EntryPoints()
    yield server
    server.close()


@pytest.fixture(scope="session")
def cjk_faces() -> list:
    """The installed faces covering common Chinese characters; skips the test when there are none."""
    faces = installed_cjk_faces()
    if not faces:
        pytest.skip("no installed font covers common Chinese characters (make fonts)")
    return faces
