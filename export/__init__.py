"""PyTorch -> ONNX / TorchScript / TFLite exporters, validation and manifests (issues 4, 5)."""
