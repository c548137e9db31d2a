"""Texts read as documents: each line a document, or each file; the end mark between them; the
held-out documents; the documents back as strings.

Layout of a documents corpus's ids (data.Corpus with documents "lines" or "files"):

    END d1 END d2 END ... END dn END

Each document follows an END, its start mark: the model reads END from its start state and
predicts the document's first character (makemore's '.' token); the next END ends it. So a
document of m characters gives m + 1 targets, its characters and its end mark. With labels,
label_ids[p] is the label of the document that the END at p starts or that the character at p
belongs to; the last END has the last document's label.

Reading streams each file through data._ChunkReader chunk by chunk, in two passes (count the
characters for the vocabulary and the ids, then encode), into an .npy memmap when a cache path is
given: no text is held whole as one string. Newlines become end marks through the encoding's
lookup table and empty lines go by a NumPy mask; only lines with labels are parsed one by one.

A folder is read recursively, its files in sorted order of their path relative to it (compared
part by part, so a folder's files come together). Inside it, hidden files and folders (a name
starting with '.') are skipped and counted in a note (a hidden file only if its name matches the
include patterns), as are files that are not UTF-8 text or cannot be read (named in the note);
files named directly are always read, and a problem with one is a DataError. Links are
followed, but each real file (st_dev, st_ino) is read once: a second name for it (a link, or the
file named twice) is skipped and counted in a note; a folder reached again is not walked again.

What reading noticed goes into the Corpus's notes, one per kind ("skipped 2 empty lines",
"skipped 3 files that are not UTF-8 text: a.bin, b.png, c.gz and 4 more"); load_documents and
documents_from_text return the Corpus alone.
"""

import fnmatch
import hashlib
import io
import os
import stat
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from .data import (END, MAX_CODE_POINT, Corpus, Vocab, _ChunkReader, _encode_chunk,
                   _mark_present, npy_output)
from .errors import ConfigError, DataError, format_chars

MODES = ("lines", "files")
BLOCK = 1 << 22       # ids per block where a whole corpus is scanned or copied
LINES_AT_ONCE = 1 << 16  # labelled lines parsed into (label, text) pairs at a time
SHOWN = 3             # file names a note shows before "and N more"


@dataclass(frozen=True)
class _File:
    """A file to read as documents."""
    name: str          # how messages and notes name it
    opener: object     # () -> a binary file object
    direct: bool       # named by the caller (a problem raises) or found in a folder (skipped)
    label: str = ""    # files mode with labels: the name of the folder it lies in


class _NotText(DataError):
    """A file that is not UTF-8 text (a NUL byte, bytes that do not decode, the end mark) or
    cannot be read: raised for a file named by the caller, a skip for one found in a folder."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


@dataclass
class _Tally:
    """What the first pass counted in one file."""
    ids: int = 0          # the ids it adds: each document's start mark and characters
    docs: int = 0
    chars: int = 0        # characters read, newlines included
    newlines: int = 0
    empty_lines: int = 0


class _Skips:
    """What reading left out or noticed, gathered into one note per kind."""

    def __init__(self):
        self.files = {}            # reason -> [names]: "binary", "unreadable", "again", "empty"
        self.hidden = [0, 0]       # hidden files, hidden folders
        self.empty_lines = 0
        self.no_newline = []       # lines mode: files read as one document

    def add(self, reason, name):
        self.files.setdefault(reason, []).append(name)

    def notes(self, where=None):
        """The notes, one per kind of skip; where: the one path given, which the caller's
        messages name already (a file without a newline is then not named again)."""
        notes, files = [], self.files
        says = {"binary": "that {are} not UTF-8 text", "unreadable": "that cannot be read",
                "again": "read already (another name of a file read)"}
        for reason, say in says.items():
            if files.get(reason):
                n = len(files[reason])
                notes.append(f"skipped {_plural(n, 'file')} "
                             f"{say.format(are='is' if n == 1 else 'are')}: {_names(files[reason])}")
        if files.get("empty"):
            notes.append(f"skipped {_plural(len(files['empty']), 'empty file')}: "
                         f"{_names(files['empty'])}")
        hidden = [_plural(n, f"hidden {kind}") for n, kind in zip(self.hidden, ("file", "folder"))
                  if n]
        if hidden:
            notes.append(f"skipped {' and '.join(hidden)}")
        if self.empty_lines:
            notes.append(f"skipped {_plural(self.empty_lines, 'empty line')}")
        if self.no_newline == [where]:
            notes.append("has no newline: read as one document")
        elif len(self.no_newline) == 1:
            notes.append(f"{self.no_newline[0]}: has no newline: read as one document")
        elif self.no_newline:
            notes.append(f"{_plural(len(self.no_newline), 'file')} have no newline, each read "
                         f"as one document: {_names(self.no_newline)}")
        return notes


def _plural(n, word):
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _names(names):
    """The first SHOWN names, then how many more."""
    more = f" and {len(names) - SHOWN:,} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


# ----------------------------------------------------------------------------- finding the files

def _walk(folder, include, skips):
    """The files to read under folder (Paths), sorted by their path relative to it, part by
    part. Hidden files and folders are skipped and counted; files whose name matches none of
    the include patterns (when given) are left out silently; links are followed, and a folder
    reached again (a link back up, a cycle) is not walked again."""
    found, walked = [], {_identity(folder)}
    def unreadable(error):                 # os.walk would pass over such a folder silently
        skips.add("unreadable", f"{error.filename}{os.sep} ({(error.strerror or '').lower()})")

    for where, folders, names in os.walk(folder, onerror=unreadable, followlinks=True):
        kept = []
        for name in sorted(folders):
            if name.startswith("."):
                skips.hidden[1] += 1
                continue
            identity = _identity(Path(where, name))
            if identity not in walked:
                walked.add(identity)
                kept.append(name)
        folders[:] = kept
        for name in names:
            if include and not any(fnmatch.fnmatchcase(name, p) for p in include):
                continue
            if name.startswith("."):
                skips.hidden[0] += 1
                continue
            path = Path(where, name)
            found.append((path.relative_to(folder).parts, path))
    return [path for _, path in sorted(found)]


def _identity(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _find(paths, documents, labels, include, skips):
    """The files to read ([_File]): each path a file (always read) or a folder (walked). A file
    named directly that does not exist or is not a regular file is a DataError; one found in a
    folder is skipped and noted, and so is a second name of a file already listed."""
    files, listed = [], set()
    for given in paths:
        given = Path(given)
        if given.is_dir():
            found = [(path, False) for path in _walk(given, include, skips)]
        elif given.exists():
            found = [(given, True)]
        else:
            raise DataError(f"{given}: no such file or folder")
        for path, direct in found:
            st, why = _regular(path)
            if why:
                if direct:
                    raise DataError(f"{path}: {why}, not a text file")
                skips.add("unreadable", f"{path} ({why})")
                continue
            if (st.st_dev, st.st_ino) in listed:
                skips.add("again", str(path))
                continue
            listed.add((st.st_dev, st.st_ino))
            label = _folder_label(path) if labels and documents == "files" else ""
            files.append(_File(str(path), partial(open, path, "rb"), direct, label))
    return files


def _regular(path):
    """(os.stat of path, None) for a regular file (links followed), else (None, why not)."""
    try:
        st = os.stat(path)
    except OSError as e:
        return None, "a broken link" if os.path.islink(path) else (e.strerror or str(e)).lower()
    return (st, None) if stat.S_ISREG(st.st_mode) else (None, "not a regular file")


def _folder_label(path):
    """The label of a file in files mode: the name of the folder it lies in (made absolute, so
    that a file in the current folder gets that folder's name; links are not resolved)."""
    label = Path(os.path.abspath(path)).parent.name
    if not label:
        raise DataError(f"{path}: lies in no named folder, whose name would be its label")
    return label


# ----------------------------------------------------------------------------- reading a file

def _chunks(reader, name, digest):
    """reader's decoded text chunks. _NotText for a file that is not UTF-8 text, contains the
    end mark (the message names the line) or cannot be read."""
    line = 1
    try:
        for text in reader.chunks(digest):
            at = text.find(END)
            if at >= 0:
                raise _NotText(f"{name}:{line + text.count(chr(10), 0, at)}: contains the end "
                               "mark U+0003 (END OF TEXT), which separates documents and cannot "
                               "be text too", "binary")
            line += text.count("\n")
            yield text
    except _NotText:
        raise
    except DataError as e:
        raise _NotText(str(e), "binary") from None
    except OSError as e:
        raise _NotText(f"{name}: cannot read it: {e.strerror or e}", "unreadable") from None


def _labelled_lines(chunks, name, tally):
    """[(label, text)] of the non-empty lines, chunk by chunk, for lines with labels
    (LABEL<TAB>TEXT). Counts newlines and empty lines (a label with no text is one) in tally.
    DataError naming file and line for a non-empty line without a label. A line is held whole
    (a chunk's last line waits for the next chunk)."""
    carry, number = "", 0
    for text in chunks:
        tally.chars += len(text)
        lines = (carry + text).split("\n")
        carry = lines.pop()
        tally.newlines += len(lines)
        for lo in range(0, len(lines), LINES_AT_ONCE):   # the pairs of a slice at a time
            yield _parse_labels(lines[lo:lo + LINES_AT_ONCE], name, number + lo, tally)
        number += len(lines)
    if carry:
        yield _parse_labels([carry], name, number, tally)


def _parse_labels(lines, name, number, tally):
    """_labelled_lines for lines number + 1, number + 2, ..."""
    pairs = []
    for k, line in enumerate(lines, number + 1):
        if not line:
            tally.empty_lines += 1
            continue
        label, tab, text = line.partition("\t")
        if not tab or not label:
            raise DataError(f"{name}:{k}: no label: with labels, each line is LABEL<TAB>TEXT")
        if text:
            pairs.append((label, text))
        else:
            tally.empty_lines += 1
    return pairs


def _line_starts(is_newline, after_newline):
    """Where non-empty lines start (not a newline, after a newline or the file's start) and
    where empty lines end (a newline after one), as masks; after_newline: whether the chunk
    follows a newline (or is the file's start)."""
    before = np.empty_like(is_newline)
    before[0] = after_newline
    before[1:] = is_newline[:-1]
    return ~is_newline & before, is_newline & before


def _count_file(f, documents, labels, present, names):
    """The first pass over one file: marks its document characters in present, adds its labels
    to names, and returns (its _Tally, its reader, for the sha256 and notes)."""
    reader, tally = _ChunkReader(f.opener, f.name), _Tally()
    chunks = _chunks(reader, f.name, digest=True)
    if documents == "lines" and labels:
        for pairs in _labelled_lines(chunks, f.name, tally):
            names.update(label for label, _ in pairs)
            _mark_present(present, "\n".join(text for _, text in pairs))
            tally.docs += len(pairs)
            tally.ids += sum(len(text) + 1 for _, text in pairs)
        return tally, reader
    after_newline = True
    for text in chunks:
        tally.chars += _mark_present(present, text)
        if documents == "lines":
            # UTF-8 never has the newline byte inside another character: count on the bytes
            is_newline = np.frombuffer(text.encode("utf-8"), dtype=np.uint8) == 10
            starts, empty = _line_starts(is_newline, after_newline)
            after_newline = bool(is_newline[-1])
            tally.newlines += int(np.count_nonzero(is_newline))
            tally.empty_lines += int(np.count_nonzero(empty))
            tally.docs += int(np.count_nonzero(starts))
    if documents == "files":
        tally.docs = int(tally.chars > 0)
        names.add(f.label)
    tally.ids = tally.chars - tally.newlines + tally.docs
    return tally, reader


def _encode_file(f, documents, lut, table, end_id, label_index):
    """The second pass over one file: its ids (and label ids, or None, without labels), chunk
    by chunk, in the layout of the module docstring less the last END."""
    chunks = _chunks(_ChunkReader(f.opener, f.name), f.name, digest=False)
    label_dtype = _label_dtype(len(label_index))
    if documents == "lines" and label_index:
        for pairs in _labelled_lines(chunks, f.name, _Tally()):
            if pairs:
                ids = _encode_chunk("\n" + "\n".join(text for _, text in pairs), lut, table)
                per_line = np.array([label_index[label] for label, _ in pairs], label_dtype)
                yield ids, np.repeat(per_line, [len(text) + 1 for _, text in pairs])
        return
    after_newline, mark = True, np.array([end_id], dtype=lut.dtype)
    for text in chunks:
        ids = _encode_chunk(text, lut, table)      # lines: the newline's id is END's
        if documents == "files":
            ids, mark = np.concatenate((mark, ids)), mark[:0]
        else:
            is_newline = ids == end_id
            starts, _ = _line_starts(is_newline, after_newline)
            after_newline = bool(is_newline[-1])
            chars = ~is_newline
            # an END before each non-empty line; the newlines themselves go
            ids = np.insert(ids[chars], np.flatnonzero(starts[chars]), end_id)
        labels = np.full(len(ids), label_index[f.label], label_dtype) if label_index else None
        yield ids, labels


def _label_dtype(n_labels):
    if n_labels > 1 << 16:
        raise DataError(f"{n_labels:,} labels: at most 65,536 are supported")
    return np.uint8 if n_labels <= 256 else np.uint16


# ----------------------------------------------------------------------------- reading documents

def load_documents(paths, documents, labels=False, include=(), cache=None, labels_cache=None,
                   vocab=None, vocab_source="the checkpoint's vocabulary", grow=False):
    """Read files and folders as documents (documents: "lines", each line one, or "files", each
    file one) into a data.Corpus in the layout of the module docstring. Returns the Corpus; what
    reading noticed (skipped files, empty lines, byte order marks ...) is in its notes.

    paths: files and folders (str or Path); include: fnmatch patterns that the name of a file
    found in a folder must match (one of them) to be read. labels: lines are LABEL<TAB>TEXT, or
    (files) a file's label is the name of its folder. cache, labels_cache: .npy paths to write
    the ids and label ids to (memory-mapped, written whole under a temporary name, then renamed);
    None keeps them in memory. vocab: encode with this vocabulary (None: the documents' own
    characters and END), whose characters outside it are a DataError naming vocab_source; with
    grow, they (and END) are added to it instead (--init-from: the vocabulary grows).

    Files found in folders that are not UTF-8 text, cannot be read or are empty are skipped (a
    note each kind); named directly, those that are not text are a DataError. The Corpus's
    source is the path when one was given, else "N files under FOLDER"; its sha256 is the one
    file's (as data.file_sha256), or, for several, of their sha256 digests in order (so the same
    bytes cut into other files differ).
    """
    if documents not in MODES:
        raise ConfigError(f"documents must be one of {', '.join(MODES)}, got {documents!r}",
                          key="documents")
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    include = (include,) if isinstance(include, str) else tuple(include)
    if not paths:
        raise DataError("no files or folders to read documents from")
    skips = _Skips()
    files = _find(paths, documents, labels, include, skips)
    where = str(paths[0]) if len(paths) == 1 else _names([str(p) for p in paths])
    return _read(files, documents, labels, skips, where, len(paths) > 1, cache, labels_cache,
                 vocab, vocab_source, grow)


def documents_from_text(text, documents, labels=False, vocab=None, source="text", label=None):
    """A documents Corpus from a str held in memory (a text to score against a model): lines,
    split at newlines, or the whole text one document (files); read as load_documents reads a
    file (CRLF to LF, a byte order mark dropped), ids in memory. With labels, lines are
    LABEL<TAB>TEXT; the one document of files mode has no folder: label names its label."""
    if documents not in MODES:
        raise ConfigError(f"documents must be one of {', '.join(MODES)}, got {documents!r}",
                          key="documents")
    if labels and documents == "files" and not label:
        raise DataError(f"{source}: a text read as one document with labels needs its label")
    raw = text.encode("utf-8", "surrogatepass")   # a lone surrogate: the reader's UTF-8 error
    f = _File(source, lambda: io.BytesIO(raw), True, label if labels else "")
    return _read([f], documents, labels, _Skips(), source, False, None, None, vocab,
                 "the checkpoint's vocabulary")


def _read(files, documents, labels, skips, where, several, cache, labels_cache, vocab,
          vocab_source, grow=False):
    """load_documents once the files are listed: the two passes. where: the path, or paths,
    given (for messages); several: whether more than one was."""
    present = np.zeros(MAX_CODE_POINT, dtype=bool)
    read, names, any_text = _count_files(files, documents, labels, present, skips)
    if documents == "lines":
        present[ord("\n")] = False               # a newline ends a document, is not in one
    n_ids = 1 + sum(tally.ids for _, tally, _ in read)
    if n_ids == 1:
        found = "no documents" if any_text else "no UTF-8 text files found"
        raise DataError(f"{where}: {found} ({'; '.join(skips.notes()) or 'no files'})")
    vocab = _vocabulary(present, vocab, vocab_source, where, grow)
    label_names = tuple(sorted(names)) if labels else ()
    ids, label_ids = _encode(read, documents, vocab, label_names, n_ids, cache, labels_cache)
    readers = [reader for _, _, reader in read]
    sha256 = _sha256(readers)
    source = _describe(where, several, [f.name for f, _, _ in read])
    notes = tuple(_reader_notes(readers) + skips.notes(None if several else where))
    return Corpus(ids, vocab, source, sha256, notes, documents, label_names, label_ids)


def _sha256(readers):
    """The documents' SHA-256: the one file's, or that of the files' digests in order."""
    if len(readers) == 1:
        return readers[0].sha256
    return hashlib.sha256(b"".join(bytes.fromhex(r.sha256) for r in readers)).hexdigest()


def documents_sha256(paths, documents, labels=False, include=()):
    """The sha256 that load_documents would give these files and folders, from its first pass
    alone (nothing encoded): what a resumed run checks its text against."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    include = (include,) if isinstance(include, str) else tuple(include)
    files = _find(paths, documents, labels, include, _Skips())
    present = np.zeros(MAX_CODE_POINT, dtype=bool)
    read, _, _ = _count_files(files, documents, labels, present, _Skips())
    return _sha256([reader for _, _, reader in read])


def _describe(where, several, names):
    """The Corpus's source: the path when one was given, else the files read and the folder
    they lie in ("3 files under data/names")."""
    if not several:
        return where
    try:
        common = os.path.commonpath(names)
    except ValueError:                    # absolute and relative paths
        common = ""
    if len(names) == 1:
        return names[0]
    return f"{len(names):,} files " + (f"under {common}" if common else f"from {where}")


def _count_files(files, documents, labels, present, skips):
    """The first pass over every file: [(file, _Tally, reader)] of those with documents, the
    labels found, and whether any file was text. A file found in a folder that is not text is
    skipped, whatever it marked undone."""
    read, names, mine, any_text = [], set(), np.zeros_like(present), False
    for f in files:
        own = set()
        try:
            tally, reader = _count_file(f, documents, labels, mine, own)
        except _NotText as e:
            if f.direct:
                raise
            skips.add(e.reason, f.name)
            mine[:] = False
            continue
        present |= mine
        mine[:] = False
        any_text = True
        if tally.chars == 0:
            skips.add("empty", f.name)
            continue
        skips.empty_lines += tally.empty_lines
        if documents == "lines" and tally.newlines == 0:
            skips.no_newline.append(f.name)
        if tally.docs:
            names |= own
            read.append((f, tally, reader))
    return read, names, any_text


def _reader_notes(readers):
    """The readers' notes: as they are for one file, summed over several."""
    if len(readers) == 1:
        return list(readers[0].notes)
    notes, boms = [], sum(r.bom for r in readers)
    crlf, crlf_files = sum(r.crlf for r in readers), sum(r.crlf > 0 for r in readers)
    if boms:
        notes.append(f"removed a UTF-8 byte order mark from {_plural(boms, 'file')}")
    if crlf:
        notes.append(f"converted {crlf:,} CRLF line endings to LF in {_plural(crlf_files, 'file')}")
    return notes


def _vocabulary(present, vocab, vocab_source, where, grow=False):
    """The documents' own characters and END, or vocab once checked to hold them all (with
    grow: vocab and them)."""
    present[ord(END)] = True
    if grow and vocab is not None:
        present[vocab.code_points()] = True
        vocab = None
    if vocab is None:
        return Vocab.from_code_points(np.flatnonzero(present))
    if END not in vocab.stoi:
        raise DataError(f"{vocab_source} has no end mark (U+0003): the model was not trained on "
                        "documents")
    missing = np.setdiff1d(np.flatnonzero(present), vocab.code_points())
    if missing.size:
        raise DataError(f"{where}: characters not in {vocab_source}: "
                        f"{format_chars([chr(c) for c in missing])}")
    return vocab


def _encode(read, documents, vocab, label_names, n_ids, cache, labels_cache):
    """The second pass: (ids, label ids or None), written into memory or the cache files."""
    lut = np.zeros(MAX_CODE_POINT, dtype=vocab.id_dtype())
    lut[vocab.code_points()] = np.arange(len(vocab))
    end_id = vocab.stoi[END]
    if documents == "lines":
        lut[ord("\n")] = end_id
    table = lut[:256].tobytes() if lut.dtype == np.uint8 else None
    label_index = {name: k for k, name in enumerate(label_names)}
    with npy_output(cache, lut.dtype, n_ids) as ids, \
            (npy_output(labels_cache, _label_dtype(len(label_names)), n_ids) if label_names
             else nullcontext()) as label_ids:
        pos, last_label = 0, 0
        for f, tally, _ in read:
            start = pos
            for chunk, chunk_labels in _encode_file(f, documents, lut, table, end_id,
                                                    label_index):
                if pos + len(chunk) > start + tally.ids:
                    break
                ids[pos:pos + len(chunk)] = chunk
                if label_ids is not None and len(chunk):
                    label_ids[pos:pos + len(chunk)] = chunk_labels
                    last_label = chunk_labels[-1]
                pos += len(chunk)
            if pos != start + tally.ids:
                raise DataError(f"{f.name}: changed while it was read; read it again")
        ids[pos] = end_id
        if label_ids is not None:
            label_ids[pos] = last_label
    return ids, label_ids


# ----------------------------------------------------------------------------- held-out documents

def end_positions(ids, end_id):
    """The positions of the end marks in ids, (k,) int64, found block by block (a memmap is
    not read whole)."""
    found = [np.flatnonzero(np.asarray(ids[lo:lo + BLOCK]) == end_id) + lo
             for lo in range(0, len(ids), BLOCK)]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def split_documents(ids, end_id):
    """Where the documents' characters are: (n_docs, 2) int64 rows (start, stop), so that
    ids[start:stop] is one document without its marks. Only what lies between two end marks is
    a document (a slice that cuts one leaves it out)."""
    ends = end_positions(ids, end_id)
    return np.stack((ends[:-1] + 1, ends[1:]), axis=1) if len(ends) else np.zeros((0, 2), np.int64)


def document_texts(ids, vocab):
    """The documents of ids as strings, without their marks, in order (what lies between two
    end marks, as split_documents). For sample's novelty test against the training set."""
    if END not in vocab.stoi:
        raise DataError("the vocabulary has no end mark (U+0003): not a documents model")
    table = vocab.code_points().astype("<u4")
    text = "".join(table[np.asarray(ids[lo:lo + BLOCK])].tobytes().decode("utf-32-le",
                                                                          "surrogatepass")
                   for lo in range(0, len(ids), BLOCK))
    return text.split(END)[1:-1]


def hold_out(corpus, val_frac, seed=0, cache=None, labels_cache=None):
    """Hold whole documents out for validation: n_val = round(val_frac * n_docs) of them (Python's
    round; at least 1 and at most n_docs - 1), chosen at random by pick(n_docs, n_val, seed).
    Returns a Corpus whose ids
    (and label ids) are the training documents in their order, then the held-out ones in
    theirs, then the last END, with val_start the position of the END that starts the first
    held-out document: training ids = ids[:val_start + 1], validation ids = ids[val_start:].
    val_frac 0, or a single document: the corpus as it is (with a note for the latter).
    cache, labels_cache: as load_documents's (they may be the
    paths that corpus's memmaps were read from). Copied block by block, in two passes (the
    training documents, then the held-out ones): the memory it needs is a block's and a flag
    per document, whatever the text's length."""
    if not 0 <= val_frac < 1:
        raise DataError(f"val_frac must be at least 0 and below 1, got {val_frac}")
    if val_frac == 0:
        return corpus
    ids = corpus.ids
    end = corpus.vocab.stoi.get(END) if corpus.documents in MODES else None
    if end is None or len(ids) < 2 or ids[0] != end or ids[-1] != end:
        raise DataError(f"{corpus.source}: not read as documents (an end mark before each "
                        "document and after the last): whole documents cannot be held out")
    n_docs = sum(int(np.count_nonzero(np.asarray(ids[lo:lo + BLOCK]) == end))
                 for lo in range(0, len(ids), BLOCK)) - 1
    if n_docs < 2:   # nothing to hold out: validation scores the one document, as val_frac 0
        return replace(corpus, notes=corpus.notes + (
            f"has {_plural(max(n_docs, 0), 'document')}: none held out (whole documents are); "
            "validation scores the training text",))
    n_val = min(max(1, round(val_frac * n_docs)), n_docs - 1)
    held = pick(n_docs, n_val, seed)
    new_ids, val_start = _reorder(ids, ids, end, held, cache)
    label_ids = (None if corpus.label_ids is None else
                 _reorder(corpus.label_ids, ids, end, held, labels_cache, last_as_before=True)[0])
    note = f"held out {n_val:,} of {n_docs:,} documents for validation (seed {seed})"
    return replace(corpus, ids=new_ids, label_ids=label_ids, val_start=val_start,
                   notes=corpus.notes + (note,))


PICK_BLOCK = 1 << 20    # documents per block of pick()


def pick(n, k, seed=0):
    """(n,) bool, True for k of the n chosen uniformly at random (every k-subset equally likely)
    with np.random.default_rng(seed), block by block of PICK_BLOCK: how many of the k fall in a
    block is a hypergeometric draw (the block's size against the rest's), and which ones, a
    choice without replacement inside it. The memory it needs beyond its result is a block's,
    where a choice over all n would make an (n,) int64 array (8 bytes a document)."""
    rng = np.random.default_rng(seed)
    flags = np.zeros(n, dtype=bool)
    left = k
    for lo in range(0, n, PICK_BLOCK):
        size = min(PICK_BLOCK, n - lo)
        here = left if lo + size == n else int(rng.hypergeometric(size, n - lo - size, left))
        flags[lo + rng.choice(size, here, replace=False)] = True
        left -= here
    return flags


def _reorder(source, ids, end, held, path, last_as_before=False):
    """(out, split): source (ids, or an array aligned with them) with the documents that held
    flags moved after the others, each part in its order, then source's last element (or, with
    last_as_before, a copy of the one before it: the label of the document now last); split:
    where the held-out part begins. A document is its END and the characters up to the next."""
    n = len(source) - 1                  # the last END is not in a document: it goes last
    with npy_output(path, source.dtype, len(source)) as out:
        at = 0
        for part in (False, True):
            if part:
                split = at
            doc = -1                     # the document that the block's first position is in
            for lo in range(0, n, BLOCK):
                index = doc + np.cumsum(np.asarray(ids[lo:min(lo + BLOCK, n)]) == end)
                doc = int(index[-1])
                piece = np.asarray(source[lo:lo + len(index)])[held[index] == part]
                out[at:at + len(piece)] = piece
                at += len(piece)
        out[n] = out[n - 1] if last_as_before else source[n]
    return out, split
