"""Data layer: tokenizer, readers, datasets and LightningDataModules. Knows nothing of models."""
