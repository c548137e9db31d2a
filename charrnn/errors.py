"""The errors charrnn raises for bad input or a refused run, never for a bug: each message is one
line that names the file, key or character at fault. The command line turns them into
"Error: ..." and an exit code (cli.py); the Python API raises them as they are.

No imports but the standard library: cli.py reads these without loading NumPy.
"""


class ConfigError(ValueError):
    """An unknown key, a wrong type or an out-of-range value; says the key and its source."""

    def __init__(self, message, key=None):
        super().__init__(message)
        self.key = key


class ArgumentError(ConfigError):
    """Arguments that cannot go together (e.g. resume with out); the command line shows it as a
    usage error."""


class DataError(ValueError):
    """A text that cannot be used: unreadable, not UTF-8, too short, outside the vocabulary."""


class SeedError(DataError):
    """A seed text the model cannot read (empty, or characters outside its vocabulary);
    `argument` names where it came from ('seed' or 'seed_file')."""

    def __init__(self, message, argument="seed"):
        super().__init__(message)
        self.argument = argument


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or written; the message names the file."""


class RunError(RuntimeError):
    """A run directory that cannot be used: owned by another live process, holding a run
    already, or not writable. The message names the directory (and the owner)."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. it keeps diverging); the message says what to do."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during training; last.npz was written. signum says which
    signal, checkpoint the file written, iteration where it stopped."""

    def __init__(self, signum, checkpoint, iteration):
        super().__init__(f"interrupted by signal {signum}")
        self.signum, self.checkpoint, self.iteration = signum, checkpoint, iteration


class ExportError(RuntimeError):
    """An export that cannot be made here: its optional extra is not installed (the message says
    what to pip install), or the model is too large for the format."""


class TuneError(RuntimeError):
    """A study that cannot be opened or joined: its storage unreachable (the message names it,
    without a password), a study or tune directory that does not exist, a tune with another
    space, keys or text than the study's, or the tune extra not installed."""


class ViewError(ValueError):
    """A view request the model or the text cannot satisfy; `argument` names the input at fault
    ('start' or 'neurons')."""

    def __init__(self, message, argument):
        super().__init__(message)
        self.argument = argument


def format_chars(chars, limit=20):
    """A readable list of characters for messages: 'a', '\\x00', '\\u00e9' ..."""
    shown = ", ".join(repr(c) for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")
