"""Text-line OCR data: list-file and LMDB sources, line transforms, the data module."""

from seq2seq_lab.data.ocr.module import OCRDataModule, OCRDataset, collate_ocr, open_sources

__all__ = ["OCRDataModule", "OCRDataset", "collate_ocr", "open_sources"]
