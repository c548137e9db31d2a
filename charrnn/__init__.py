"""charrnn: character-level RNN, LSTM and GRU language models, trained on a CPU in NumPy.

The Python API (charrnn/api.py): fit, dry_run, load, generate, sampler, score, score_files,
view, plot_runs, export, write_page, presets, tune, tune_results, and the errors they raise
(charrnn/errors.py).
They are imported on first use, so that `charrnn --help` does not wait for NumPy.
"""

__version__ = "0.1.0"

_API = {
    **dict.fromkeys(["fit", "dry_run", "load", "generate", "sampler", "score", "score_files",
                     "view", "plot_runs", "export", "write_page", "presets", "tune",
                     "tune_results"], "api"),
    "Checkpoint": "checkpoint",
    **dict.fromkeys(["ConfigError", "ArgumentError", "DataError", "SeedError", "CheckpointError",
                     "RunError", "TrainingError", "Interrupted", "ViewError", "ExportError",
                     "TuneError"],
                   "errors"),
}

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'charrnn' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    globals()[name] = value
    return value
