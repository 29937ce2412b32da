"""MNIST: IDX files and their checksums (``idx``), the rows/columns module (``module``), digit strings (``digits``)."""

from seq2seq_lab.data.mnist.module import (
    MNISTChecksumError,
    MNISTDataError,
    MNISTDataModule,
    MNISTNotFoundError,
    download_mnist,
    load_mnist,
    locate_mnist,
    read_mnist_file,
)

__all__ = ["MNISTDataModule", "MNISTNotFoundError", "MNISTDataError", "MNISTChecksumError",
           "locate_mnist", "download_mnist", "read_mnist_file", "load_mnist"]
