"""Deploying trained models: export to ONNX/TorchScript (:mod:`.graphs`, :mod:`.onnx_export`) and the torch-free
reader of exported models (:mod:`.runtime`, which imports only numpy, Pillow and onnxruntime)."""
