"""Text in, ids out: reading UTF-8 files, the vocabulary, encoding, batches, the built-in corpus.

A vocabulary is the sorted set of a text's characters (by code point); id i is the i-th. Texts are
encoded with NumPy rather than per-character Python, into the smallest unsigned integer type that
holds V ids (uint8 up to 256 characters); batches are cast to int32.

Batching follows char-rnn: the training ids are cut into batch_size parallel streams, each read in
seq_length chunks, so the hidden state of stream n carries over from one chunk to the next.
"""

import hashlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A text that cannot be used: unreadable, not UTF-8, too short, outside the vocabulary."""


@dataclass(frozen=True)
class Vocab:
    chars: str                                   # the characters, sorted by code point
    stoi: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "stoi", {ch: i for i, ch in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text):
        return cls("".join(chr(c) for c in np.unique(_code_points(text))))

    @classmethod
    def from_code_points(cls, code_points):
        return cls("".join(chr(int(c)) for c in code_points))

    def code_points(self):
        return np.array([ord(c) for c in self.chars], dtype=np.int32)

    def __len__(self):
        return len(self.chars)

    def id_dtype(self):
        return np.uint8 if len(self) <= 256 else np.uint16 if len(self) <= 65536 else np.uint32

    def missing(self, text):
        """Characters of text that are not in the vocabulary, sorted."""
        return sorted(set(text) - set(self.chars))

    def encode(self, text):
        """text -> ids (compact unsigned dtype). Raises DataError naming unknown characters."""
        cps = _code_points(text)
        table = self.code_points()
        pos = np.searchsorted(table, cps)
        pos_clipped = np.minimum(pos, len(table) - 1)
        if not np.array_equal(table[pos_clipped], cps):
            raise DataError(f"characters not in the vocabulary: {format_chars(self.missing(text))}")
        return pos_clipped.astype(self.id_dtype())

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


def _code_points(text):
    """The code points of text as an int32 array, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int32)


def format_chars(chars, limit=20):
    """A readable list of characters for error messages: 'a', '\\x00', '\\u00e9' ..."""
    shown = ", ".join(repr(c) for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


@dataclass(frozen=True)
class Text:
    """A decoded text and what reading it noticed."""
    text: str
    source: str        # the path, or a description of the built-in corpus
    sha256: str        # of the bytes as read
    notes: tuple = ()  # e.g. ("removed a UTF-8 byte order mark",)


def read_text(path):
    """Read a UTF-8 file. A leading byte order mark is dropped (and noted); undecodable bytes are a
    DataError naming the file and the byte offset."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a text file") from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    return decode_bytes(raw, str(path))


def decode_bytes(raw, source):
    notes = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{source}: invalid UTF-8 at byte offset {e.start} "
                        f"(byte 0x{raw[e.start]:02x}); charrnn reads UTF-8 text only") from None
    if text.startswith("\ufeff"):
        text = text[1:]
        notes.append("removed a UTF-8 byte order mark")
    if not text:
        raise DataError(f"{source}: the file is empty")
    return Text(text, source, hashlib.sha256(raw).hexdigest(), tuple(notes))


# Pure-Python standard-library modules present in every CPython >= 3.10, read as text: a corpus
# that exists offline on any machine with Python, without shipping a data file.
BUILTIN_MODULES = ("textwrap", "argparse", "string", "difflib", "pprint", "heapq", "bisect",
                   "fractions", "statistics", "shlex", "calendar", "csv", "random", "dataclasses",
                   "functools", "configparser", "gettext", "tokenize", "inspect", "ast")


def builtin_corpus():
    """The built-in corpus: the source of BUILTIN_MODULES, concatenated (about 800 kB)."""
    parts = []
    for name in BUILTIN_MODULES:
        spec = importlib.util.find_spec(name)
        if spec and spec.origin and spec.origin.endswith(".py") and Path(spec.origin).is_file():
            parts.append(Path(spec.origin).read_text(encoding="utf-8"))
    if not parts:
        raise DataError("the built-in corpus needs the Python standard library's .py sources, "
                        "which this Python does not have; give a text file instead")
    raw = "\n".join(parts).encode("utf-8")
    return decode_bytes(raw, "built-in corpus (Python standard library sources)")


def split_train_val(ids, val_frac):
    """The last val_frac of the ids is held out for validation."""
    n_val = int(len(ids) * val_frac)
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


class Batches:
    """batch_size parallel streams over ids, read seq_length at a time.

    Stream n is ids[n * L : (n + 1) * L + 1] with L = (len(ids) - 1) // batch_size; chunk k of a
    pass is columns k * T .. (k + 1) * T of every stream. The chunk for an iteration depends on the
    iteration alone, so a resumed run reads on from the same place.
    """

    def __init__(self, ids, batch_size, seq_length):
        self.batch_size, self.seq_length = batch_size, seq_length
        L = (len(ids) - 1) // batch_size
        self.per_pass = L // seq_length  # chunks per pass over the data
        if self.per_pass < 1:
            raise DataError(f"the training text has {len(ids)} characters; batch_size "
                            f"{batch_size} x seq_length {seq_length} needs at least "
                            f"{min_length(batch_size, seq_length)}")
        self.inputs = ids[:batch_size * L].reshape(batch_size, L)
        self.targets = ids[1:batch_size * L + 1].reshape(batch_size, L)

    def chunk(self, iteration):
        """(inputs, targets), each (N, T) int32, and whether this chunk starts a new pass."""
        k = iteration % self.per_pass
        cols = slice(k * self.seq_length, (k + 1) * self.seq_length)
        return (self.inputs[:, cols].astype(np.int32), self.targets[:, cols].astype(np.int32),
                k == 0)


def min_length(batch_size, seq_length):
    """The fewest characters that make one training chunk."""
    return batch_size * seq_length + 1
