"""Text in, ids out: reading UTF-8 files, the vocabulary, encoding, batches, the built-in corpus.

A vocabulary is the sorted set of a text's characters (by code point); id i is the i-th. Texts are
encoded with NumPy rather than per-character Python, into the smallest unsigned integer type that
holds V ids (uint8 up to 256 characters); batches are cast to int32.

Batching follows char-rnn: the training ids are cut into batch_size parallel streams, each read in
seq_length chunks, so the hidden state of stream n carries over from one chunk to the next.

Prompt/completion texts (the completion config key, e.g. "@."): completion_mask says which
characters are scored, the ones after a separator up to and including the end mark, and Batches
turns the targets that are not into -1; strip_labels removes the `L<TAB>N<TAB>` labels that
scripts/learning_to_execute.py --labels puts before each line.
"""

import codecs
from contextlib import contextmanager
import hashlib
import re
import importlib.util
import io
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, format_chars  # noqa: F401 (format_chars: data's users)


END = "\x03"   # U+0003 END OF TEXT: the end mark of documents (documents.py), one of the ids


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


def take_chars(text, positions):
    """The characters of text at positions (increasing offsets), as a str, without a Python
    loop."""
    return _code_points(text)[positions].astype("<u4").tobytes().decode("utf-32-le",
                                                                        "surrogatepass")


@dataclass(frozen=True)
class Text:
    """A decoded text and what reading it noticed."""
    text: str
    source: str        # the path, or a description of the built-in corpus
    sha256: str        # of the bytes as read
    notes: tuple = ()  # e.g. ("removed a UTF-8 byte order mark",)


def read_text(path):
    """Read a UTF-8 file. A leading byte order mark is dropped and CRLF line endings become LF
    (both noted); undecodable bytes are a DataError naming the file and the byte offset."""
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


STDIN = "<stdin>"   # how messages name the text read from '-'


def text_name(path):
    """How messages name a text given as path ('-': stdin)."""
    return STDIN if str(path) == "-" else str(path)


def read_text_or_stdin(path):
    """read_text, or the same for the bytes on stdin when path is '-'."""
    if str(path) == "-":
        return decode_bytes(sys.stdin.buffer.read(), STDIN)
    return read_text(path)


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
    crlf = text.count("\r\n")
    if crlf:  # as the training loader does, so eval and seed texts match what was trained on
        text = text.replace("\r\n", "\n")
        notes.append(f"converted {crlf:,} CRLF line endings to LF")
    if not text:
        raise DataError(f"{source}: the file is empty")
    return Text(text, source, hashlib.sha256(raw).hexdigest(), tuple(notes))


# Pure-Python standard-library modules present in every CPython >= 3.10, read as text: a corpus
# that exists offline on any machine with Python, without shipping a data file.
BUILTIN_MODULES = ("textwrap", "argparse", "string", "difflib", "pprint", "heapq", "bisect",
                   "fractions", "statistics", "shlex", "calendar", "csv", "random", "dataclasses",
                   "functools", "configparser", "gettext", "tokenize", "inspect", "ast")
BUILTIN_SOURCE = "built-in corpus (Python standard library sources)"


def builtin_bytes():
    """The built-in corpus as UTF-8 bytes: the source of BUILTIN_MODULES, concatenated."""
    parts = []
    for name in BUILTIN_MODULES:
        spec = importlib.util.find_spec(name)
        if spec and spec.origin and spec.origin.endswith(".py") and Path(spec.origin).is_file():
            parts.append(Path(spec.origin).read_text(encoding="utf-8"))
    if not parts:
        raise DataError("the built-in corpus needs the Python standard library's .py sources, "
                        "which this Python does not have; give a text file instead")
    return "\n".join(parts).encode("utf-8")


def builtin_corpus():
    """The built-in corpus as a Text (about 800 kB)."""
    return decode_bytes(builtin_bytes(), BUILTIN_SOURCE)


# ----------------------------------------------------------------------------- large texts
#
# Training texts are read in chunks and encoded straight into a compact integer array (an .npy
# file, memory-mapped, when a cache path is given), so a text of any size is never held in memory
# as a Python string: one pass counts the characters (for the vocabulary, with np.bincount), a
# second pass maps them to ids through a lookup table.

CHUNK_BYTES = 1 << 24          # 16 MiB of UTF-8 per chunk
MAX_CODE_POINT = 0x110000


@dataclass(frozen=True)
class Corpus:
    """An encoded training text: one stream, or documents (documents.py reads those and says
    their layout: each document after an end mark, a last end mark after them all)."""
    ids: np.ndarray    # (n,) compact unsigned ids (np.memmap when cached)
    vocab: Vocab
    source: str
    sha256: str        # of the bytes as read
    notes: tuple = ()
    documents: str = "stream"            # stream | lines | files
    label_names: tuple = ()              # sorted label names ('' never one); () without labels
    label_ids: np.ndarray | None = None  # (n,) index into label_names per position (uint8 up to
    #                                      256 labels, else uint16; memmap when cached); or None
    val_start: int | None = None         # documents: ids[val_start] is the end mark before the
    #                                      first held-out document (documents.hold_out); None: not split

    @property
    def end(self):
        """The end mark's id, for documents (model.forward's end); None for a stream."""
        return None if self.documents == "stream" else self.vocab.stoi[END]


class _ChunkReader:
    """Decodes a UTF-8 byte stream chunk by chunk: drops a leading byte order mark, turns CRLF
    into LF, refuses NUL bytes (a binary file) and undecodable bytes, naming the byte offset.
    After a full pass, sha256 and notes describe what was read."""

    def __init__(self, opener, source):
        self.opener, self.source = opener, source
        self.sha256, self.notes = None, ()
        self.bom, self.crlf = False, 0     # after a full pass: what the notes say, as values

    def chunks(self, digest=True):
        """Yield decoded text chunks; with digest, also compute sha256 (one pass needs it)."""
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        hasher = hashlib.sha256() if digest else None
        offset, crlf, bom, carry = 0, 0, False, ""
        with self.opener() as f:
            while True:
                raw = f.read(CHUNK_BYTES)
                final = not raw
                if hasher:
                    hasher.update(raw)
                nul = raw.find(b"\x00")
                if nul >= 0:
                    raise DataError(f"{self.source}: looks like a binary file (NUL byte at offset "
                                    f"{offset + nul}); charrnn reads UTF-8 text only")
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(raw, final)
                except UnicodeDecodeError as e:
                    where = offset - pending + e.start
                    byte = (raw[e.start - pending] if e.start >= pending
                            else e.object[e.start])
                    raise DataError(f"{self.source}: invalid UTF-8 at byte offset {where} "
                                    f"(byte 0x{byte:02x}); charrnn reads UTF-8 text only") from None
                if offset == 0 and text.startswith("\ufeff"):
                    text, bom = text[1:], True
                offset += len(raw)
                had_carry, carry = carry, ""
                text = had_carry + text
                if text.endswith("\r") and not final:   # its \n may start the next chunk
                    text, carry = text[:-1], "\r"
                if (had_carry or b"\r" in raw) and "\r\n" in text:  # bytes search: 50x faster
                    crlf += text.count("\r\n")
                    text = text.replace("\r\n", "\n")
                if text:
                    yield text
                if final:
                    break
        if hasher:
            self.sha256 = hasher.hexdigest()
        self.bom, self.crlf = bom, crlf
        self.notes = tuple(note for flag, note in (
            (bom, "removed a UTF-8 byte order mark"),
            (crlf, f"converted {crlf:,} CRLF line endings to LF")) if flag)


def _reader(path):
    if path is None:
        data = builtin_bytes()
        return _ChunkReader(lambda: io.BytesIO(data), BUILTIN_SOURCE)
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a text file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return _ChunkReader(lambda: open(path, "rb"), str(path))


def file_sha256(path):
    """SHA-256 of a training file's bytes (of the built-in corpus for None)."""
    if path is None:
        return hashlib.sha256(builtin_bytes()).hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _mark_present(seen, text):
    """Set seen[c] for every code point c of text; return the number of characters. Text that
    fits in Latin-1 is counted a byte per character, in blocks (np.bincount casts to int64)."""
    try:
        raw = np.frombuffer(text.encode("latin-1"), dtype=np.uint8)
    except UnicodeEncodeError:
        cps = _code_points(text)
        seen[cps] = True
        return len(cps)
    block = 1 << 20
    for k in range(0, len(raw), block):
        seen[:256] |= np.bincount(raw[k:k + block], minlength=256) > 0
    return len(raw)


def _encode_chunk(text, lut, table):
    """ids of text through lut (code point -> id); table: lut as bytes when all ids fit a byte,
    for bytes.translate, which maps Latin-1 text 3x faster than a NumPy gather."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return lut[_code_points(text)]
    if table is not None:
        return np.frombuffer(raw.translate(table), dtype=np.uint8)
    return lut[np.frombuffer(raw, dtype=np.uint8)]


def load_corpus(path=None, cache=None, vocab=None, vocab_source="the checkpoint's vocabulary",
                grow=False, hint=""):
    """Read and encode a training text (None: the built-in corpus) into ids.

    cache: an .npy path to write the ids to, memory-mapped; or None to keep them in memory.
    vocab: encode with this vocabulary (fine-tuning, or the vocab key); characters outside it are
    a DataError naming them and vocab_source (where the vocabulary came from), then hint; or
    with grow, added to it (the Corpus's vocabulary: vocab's characters and the text's new ones).
    """
    reader = _reader(path)
    seen = np.zeros(MAX_CODE_POINT, dtype=bool)
    n = 0
    for text in reader.chunks():
        n += _mark_present(seen, text)
    if n == 0:
        raise DataError(f"{reader.source}: the file is empty")
    present = np.flatnonzero(seen)
    if vocab is None:
        vocab = Vocab.from_code_points(present)
    else:
        missing = np.setdiff1d(present, vocab.code_points())
        if missing.size and grow:
            vocab = Vocab.from_code_points(np.union1d(vocab.code_points(), missing))
        elif missing.size:
            raise DataError(f"{reader.source}: characters not in {vocab_source}: "
                            f"{format_chars([chr(c) for c in missing])}{hint}")
    dtype = vocab.id_dtype()
    lut = np.zeros(MAX_CODE_POINT, dtype=dtype)
    lut[vocab.code_points()] = np.arange(len(vocab))
    table = lut[:256].tobytes() if dtype == np.uint8 else None
    with npy_output(cache, dtype, n) as ids:
        _encode_into(ids, reader, lut, table)
    return Corpus(ids, vocab, reader.source, reader.sha256, reader.notes)


@contextmanager
def npy_output(path, dtype, n):
    """An (n,) array of dtype to fill: in memory (path None), or an .npy file memory-mapped,
    written under a temporary name of its own and renamed to path once filled: a crash leaves no
    torn file, and a file that another process (or this one) has mapped is never written over
    (it keeps its old inode), so that its mapping stays valid; the array's follows the rename."""
    if path is None:
        yield np.empty(n, dtype=dtype)
        return
    path = Path(path)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, usual_file_mode())      # mkstemp makes 0600
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=(n,))
        yield out
        out.flush()
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


def write_atomic(path, data):
    """Write data (bytes) to path whole: a temporary file in the same folder, then renamed over
    path, so that a reader never sees half of it and a failure leaves path as it was. DataError
    naming path if it cannot be written."""
    path, tmp = Path(path), None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, usual_file_mode())   # mkstemp makes 0600
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise DataError(f"{path}: cannot write: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return len(data)


def usual_file_mode():
    """The mode a new file gets by default here (0666 less the umask), for files that are made
    under a temporary name first (mkstemp makes them 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _encode_into(ids, reader, lut, table):
    pos = 0
    for text in reader.chunks(digest=False):
        chunk = _encode_chunk(text, lut, table)
        ids[pos:pos + len(chunk)] = chunk
        pos += len(chunk)


def corpus_from_text(text, source="text"):
    """A Corpus from a str held in memory (small texts, tests)."""
    if not text:
        raise DataError(f"{source}: the text is empty")
    vocab = Vocab.from_text(text)
    return Corpus(vocab.encode(text), vocab, source,
                  hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())


def open_cached(cache, vocab, source, sha256):
    """A Corpus from ids cached by load_corpus (for resuming), memory-mapped read-only."""
    ids = np.load(cache, mmap_mode="r", allow_pickle=False)
    return Corpus(ids, vocab, source, sha256)


def split_train_val(ids, val_frac):
    """The last val_frac of the ids is held out for validation."""
    n_val = int(len(ids) * val_frac)
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


class Batches:
    """batch_size parallel streams over ids, read seq_length at a time.

    Stream n is ids[n * L : (n + 1) * L + 1] with L = (len(ids) - 1) // batch_size; chunk k of a
    pass is columns k * T .. (k + 1) * T of every stream. The chunk for an iteration depends on the
    iteration alone, so a resumed run reads on from the same place. mask (len(ids),) bool, from
    completion_mask: the targets of characters it leaves out are -1 (not scored). Documents:
    end, the end mark's id (model.forward resets the state where it is read), and labels
    (len(ids),), each position's label id, cut into streams as the ids are.
    """

    def __init__(self, ids, batch_size, seq_length, mask=None, end=None, labels=None):
        self.batch_size, self.seq_length, self.end = batch_size, seq_length, end
        L = (len(ids) - 1) // batch_size
        self.per_pass = chunks_per_pass(len(ids), batch_size, seq_length)
        if self.per_pass < 1:
            raise DataError(f"the training text has {len(ids)} characters; batch_size "
                            f"{batch_size} x seq_length {seq_length} needs at least "
                            f"{min_length(batch_size, seq_length)}")
        self.inputs = ids[:batch_size * L].reshape(batch_size, L)
        self.targets = ids[1:batch_size * L + 1].reshape(batch_size, L)
        self.scored = None if mask is None else mask[1:batch_size * L + 1].reshape(batch_size, L)
        self.labels = None if labels is None else labels[:batch_size * L].reshape(batch_size, L)

    def chunk(self, iteration):
        """(inputs, targets), each (N, T) int32, and whether this chunk starts a new pass.
        Targets that the mask leaves out are -1."""
        k, cols = self._cols(iteration)
        targets = self.targets[:, cols].astype(np.int32)
        if self.scored is not None:
            targets[~self.scored[:, cols]] = -1
        return self.inputs[:, cols].astype(np.int32), targets, k == 0

    def labels_at(self, iteration):
        """The (N, T) int32 label ids of chunk(iteration)'s inputs, or None without labels."""
        if self.labels is None:
            return None
        return self.labels[:, self._cols(iteration)[1]].astype(np.int32)

    def extras(self, iteration, width=0):
        """What loss_and_grads reads beside chunk(iteration), as keyword arguments: the end
        mark, the inputs' labels and the context of width ids (direct features)."""
        return {"end": self.end, "labels": self.labels_at(iteration),
                "context": self.context(iteration, width)}

    def context(self, iteration, width):
        """The width ids before chunk(iteration)'s inputs in each stream, (N, width) int32, -1
        where there are none (the first chunk of a pass, whose state starts at zeros): the
        context of a model with direct features (direct.py); None for width 0."""
        if not width:
            return None
        k, cols = self._cols(iteration)
        out = np.full((self.batch_size, width), -1, dtype=np.int32)
        if k:
            lo = max(0, cols.start - width)
            out[:, width - (cols.start - lo):] = self.inputs[:, lo:cols.start]
        return out

    def _cols(self, iteration):
        """(k, the columns of chunk k): iteration's chunk of the pass."""
        k = iteration % self.per_pass
        return k, slice(k * self.seq_length, (k + 1) * self.seq_length)


def chunks_per_pass(n_ids, batch_size, seq_length):
    """The chunks in one pass over n_ids training ids (Batches.per_pass)."""
    return (n_ids - 1) // batch_size // seq_length


def min_length(batch_size, seq_length):
    """The fewest characters that make one training chunk."""
    return batch_size * seq_length + 1


# ----------------------------------------------------------------------------- completions

MASK_BLOCK = 1 << 24     # ids per block of completion_mask (its temporaries are 8 bytes an id)


def completion_mask(ids, separator, end):
    """Which characters a completion setting scores: mask[j] is True iff the most recent
    separator-or-end-mark character strictly before j is the separator. So the characters after
    a separator, up to and including the end mark, are scored; the prompt, the separator itself
    and what follows the end mark (a newline) are not. A completion without its end mark runs on
    to the next mark. ids: (n,) ids; separator, end: their ids. Returns (n,) bool; mask[0] is
    False (nothing precedes it).

    Vectorised: the position of the latest mark at or before each j is a running maximum
    (np.maximum.accumulate) of the marks' positions; block by block, carrying whether the last
    mark so far was the separator, so that a long text needs no n-sized int64 temporary."""
    mask = np.zeros(len(ids), dtype=bool)
    inside = False           # whether the last mark before this block is the separator
    for lo in range(0, len(ids), MASK_BLOCK):
        block = np.asarray(ids[lo:lo + MASK_BLOCK])
        is_sep = block == separator
        is_mark = is_sep | (block == end)
        # latest[j]: the position (in the block) of the last mark at or before j, -1 for none
        latest = np.maximum.accumulate(np.where(is_mark, np.arange(len(block)), -1))
        before = np.concatenate(([-1], latest[:-1]))    # ... strictly before j
        mask[lo:lo + len(block)] = np.where(before >= 0, is_sep[np.maximum(before, 0)], inside)
        if latest[-1] >= 0:
            inside = bool(is_sep[latest[-1]])
    return mask


LABEL = re.compile(r"(\d+)\t(\d+)\t")   # scripts/learning_to_execute.py --labels: L<TAB>N<TAB>


def strip_labels(text):
    """The `L<TAB>N<TAB>` labels at the start of a text's lines: (kept, levels), where kept is
    the (n,) int64 offsets of the characters of text that are not labels, and levels a tuple of
    (L, N), or None, for each line (split at newlines; an empty line has none). A text in which
    no line has a label gives (None, None). DataError if some non-empty lines have one and
    others do not: it names the first line without."""
    lines = text.split("\n")
    found = [LABEL.match(line) for line in lines]
    if not any(found):
        return None, None
    for number, (line, match) in enumerate(zip(lines, found), 1):
        if line and match is None:
            raise DataError(f"line {number} has no L<TAB>N<TAB> label, but other lines have "
                            "one (scripts/learning_to_execute.py --labels writes them on every "
                            "line)")
    keep = np.ones(len(text), dtype=bool)
    offset = 0
    for line, match in zip(lines, found):
        if match is not None:
            keep[offset:offset + match.end()] = False
        offset += len(line) + 1
    levels = tuple((int(m.group(1)), int(m.group(2))) if m else None for m in found)
    return np.flatnonzero(keep), levels
