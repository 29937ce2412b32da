"""Deploying trained models: exportable graphs (:mod:`.graphs`), ONNX/TorchScript export and its
verification (:mod:`.exporting`), opening an exported file for the entry points (:mod:`.loading`),
and the torch-free reader of exported models (:mod:`.runtime`: numpy, Pillow and onnxruntime only).
Importing this package imports nothing heavy."""
