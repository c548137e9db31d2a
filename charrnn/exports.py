"""Exports: a checkpoint as a file that runs without charrnn (`charrnn export`).

    model.html   one self-contained page that writes with the model in the browser
                 (export_html.py): the weights inside it, a sampler in JavaScript with its
                 matrix products in a WebAssembly SIMD kernel (the JavaScript loop its
                 fallback)
    model.onnx   an ONNX model (export_onnx.py; the optional extra `pip install charrnn[onnx]`)
    model.npz    a charrnn checkpoint of the weights alone, as the page stores them (rounded
                 by --weights), for `charrnn eval` and `sample` to measure what rounding costs

The format follows the output's extension, or `format`. An export is a view of a checkpoint: it
reads the same arrays, in the layout docs/files.md documents, and is tested against charrnn
itself (the same greedy text, the same log-probabilities).

Weights (`weights`): float32 as trained, float16, or int8 with a scale per output unit
(rounding.py); the page, the .npz and the ONNX model of one `weights` setting compute with the
same rounded weights.

Every file is written to a temporary name in its folder, then renamed: an export that fails
leaves nothing behind.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .data import write_atomic
from .errors import ArgumentError, DataError, ExportError
from .rounding import WEIGHTS, rounded

FORMATS = {".html": "html", ".htm": "html", ".onnx": "onnx", ".npz": "npz"}
PAGE_LIMIT = 64 << 20                 # bytes: a page larger than this is refused


@dataclass(frozen=True)
class Exported:
    """What an export wrote: its path, format, size in bytes, and notes to say."""
    path: Path
    format: str
    weights: str
    bytes: int
    notes: tuple = ()


def format_of(output, fmt=None):
    """The format to write: fmt if given (html, onnx or npz), else the one output's extension
    names. ArgumentError for an unknown one."""
    if fmt is not None:
        if fmt not in set(FORMATS.values()):
            raise ArgumentError(f"{fmt!r} is not a format charrnn exports to; formats: html, "
                                "onnx, npz")
        return fmt
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        raise ArgumentError(f"{output}: the name must end in .html, .onnx or .npz (or give "
                            "--format)")
    return FORMATS[suffix]


def export(ckpt, output, fmt=None, weights="float32"):
    """Write ckpt to output in a format (see the module docstring); returns Exported.
    ArgumentError for an unknown format or weights; ExportError when this export cannot be
    made (the onnx extra missing, a page too large); DataError if output cannot be written."""
    fmt = format_of(output, fmt)
    if weights not in WEIGHTS:
        raise ArgumentError(f"weights must be one of {', '.join(WEIGHTS)}; got {weights!r}")
    _check_kind(ckpt, fmt)
    if fmt == "html":
        from .export_html import render_page

        data = render_page(ckpt, weights).encode("utf-8")
        _check_page_size(output, data, weights)
    elif fmt == "onnx":
        from .export_onnx import build_onnx

        data = build_onnx(rounded(ckpt, weights))
    else:
        data = None
    path = Path(output)
    size = _write(path, data, _weights_only(rounded(ckpt, weights), weights)
                  if fmt == "npz" else None)
    return Exported(path, fmt, weights, size)


def _check_kind(ckpt, fmt):
    """ExportError for what a format cannot carry: the page samples one stream (not documents),
    and neither the page nor the ONNX graph has the labels' vectors or the direct features'
    tables (the .npz keeps them)."""
    if fmt == "html" and ckpt.end is not None:
        raise ExportError(f"{ckpt.path or 'the model'}: a model of documents cannot be exported "
                          "as a page yet (the page writes one stream); export it as .onnx or .npz")
    if fmt == "onnx" and ckpt.labels:
        raise ExportError(f"{ckpt.path or 'the model'}: a model with labels cannot be exported "
                          "as ONNX yet (the graph has no input for the label); export it as .npz")
    if fmt in ("html", "onnx") and "Wd" in ckpt.params:
        kind = "a page" if fmt == "html" else "ONNX"
        raise ExportError(f"{ckpt.path or 'the model'}: a model with direct features "
                          f"(direct_order {ckpt.model_cfg.direct_order}) cannot be exported as "
                          f"{kind} yet (it has no hashed tables); export it as .npz")


def _weights_only(ckpt, weights):
    """A checkpoint of ckpt's weights alone, to score, sample or start a run from (--init-from):
    no optimizer state, RNG or carried state (rounded weights are not a run to resume); its info
    says how they were rounded."""
    return dataclasses.replace(ckpt, optim_state={}, rng_state=None, hidden_state=None,
                               info={**ckpt.info, "exported_weights": weights})


def _check_page_size(output, data, weights):
    if len(data) > PAGE_LIMIT:
        hint = "; try --weights int8 (a quarter of float32's size)" if weights != "int8" else ""
        raise ExportError(f"{output}: the page would be {len(data):,} bytes, more than a page "
                          f"may hold ({PAGE_LIMIT:,}){hint}")


def _write(path, data, ckpt=None):
    """Write data (bytes), or ckpt as a checkpoint, to path through a temporary file in the same
    folder; the bytes written. DataError naming path if it cannot be written."""
    from .checkpoint import CheckpointError, save_checkpoint

    if not path.parent.is_dir():
        raise DataError(f"{path}: cannot write: no such folder {path.parent}")
    if ckpt is not None:
        try:
            save_checkpoint(path, ckpt)
        except CheckpointError as e:
            raise DataError(str(e)) from None
        return path.stat().st_size
    return write_atomic(path, data)

