"""The ONNX model of `charrnn export RUN -o model.onnx`: to be written (issue 18)."""


def build_onnx(ckpt):
    """The serialized ONNX model, as bytes."""
    raise NotImplementedError
