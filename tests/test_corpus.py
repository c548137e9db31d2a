"""Reading and encoding training texts in chunks (data.load_corpus)."""

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import charrnn.data as data
from charrnn.data import DataError, Vocab, load_corpus


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Chunks of 7 bytes, so that characters and CRLF pairs straddle chunk boundaries."""
    monkeypatch.setattr(data, "CHUNK_BYTES", 7)


def _write(tmp_path, raw, name="t.txt"):
    path = tmp_path / name
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize("text", [
    "hello world\n" * 5,
    "naïve café ünïcödé — ok\n" * 3,
    "中文字符和 emoji 😀 mixed\n" * 4,
    "latin-1 only: ÿ þ à\n" * 3,
])
def test_chunked_encoding_equals_whole_text_encoding(tmp_path, tiny_chunks, text):
    path = _write(tmp_path, text.encode("utf-8"))
    corpus = load_corpus(path)
    vocab = Vocab.from_text(text)
    assert corpus.vocab == vocab
    np.testing.assert_array_equal(corpus.ids, vocab.encode(text))
    assert corpus.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert corpus.notes == ()


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
               min_size=1))
def test_chunked_encoding_round_trips_any_text(text):
    import io
    original = data.CHUNK_BYTES
    data.CHUNK_BYTES = 5
    try:
        reader = data._ChunkReader(lambda: io.BytesIO(text.encode("utf-8")), "t")
        decoded = "".join(reader.chunks())
    finally:
        data.CHUNK_BYTES = original
    expected = text[1:] if text.startswith("\ufeff") else text
    assert decoded == expected.replace("\r\n", "\n")


def test_memory_mapped_cache(tmp_path):
    path = _write(tmp_path, b"abcabcabd\n" * 10)
    corpus = load_corpus(path, cache=tmp_path / "ids.npy")
    assert isinstance(corpus.ids, np.memmap) and corpus.ids.dtype == np.uint8
    again = np.load(tmp_path / "ids.npy", mmap_mode="r")
    np.testing.assert_array_equal(again, corpus.ids)
    assert not list(tmp_path.glob(".*.tmp"))   # written under a temporary name, then renamed


def test_large_vocabulary_uses_uint16(tmp_path):
    text = "".join(chr(0x4E00 + i) for i in range(300)) * 2
    corpus = load_corpus(_write(tmp_path, text.encode("utf-8")))
    assert corpus.ids.dtype == np.uint16 and len(corpus.vocab) == 300
    assert corpus.vocab.decode(corpus.ids) == text


def test_bom_and_crlf_are_normalised_and_noted(tmp_path, tiny_chunks):
    raw = b"\xef\xbb\xbfline one\r\nline two\r\nend\r\n"
    corpus = load_corpus(_write(tmp_path, raw))
    assert corpus.vocab.decode(corpus.ids) == "line one\nline two\nend\n"
    assert corpus.notes == ("removed a UTF-8 byte order mark", "converted 3 CRLF line endings to LF")
    assert corpus.sha256 == hashlib.sha256(raw).hexdigest()  # of the bytes as read


def test_invalid_utf8_offset_is_exact_across_chunks(tmp_path, tiny_chunks):
    raw = "ééé abc".encode("utf-8") + b"\xc3(" + b" tail"
    path = _write(tmp_path, raw)
    with pytest.raises(DataError) as e:
        load_corpus(path)
    assert str(e.value) == (f"{path}: invalid UTF-8 at byte offset 10 (byte 0xc3); charrnn reads "
                            "UTF-8 text only")


def test_binary_file_is_refused(tmp_path):
    path = _write(tmp_path, b"ELF\x02\x01\x00\x00binary")
    with pytest.raises(DataError) as e:
        load_corpus(path)
    assert str(e.value) == (f"{path}: looks like a binary file (NUL byte at offset 5); charrnn "
                            "reads UTF-8 text only")


def test_empty_missing_and_directory(tmp_path):
    with pytest.raises(DataError, match=r"the file is empty$"):
        load_corpus(_write(tmp_path, b""))
    with pytest.raises(DataError, match=r"no such file$"):
        load_corpus(tmp_path / "nope.txt")
    with pytest.raises(DataError, match=r"is a directory, not a text file$"):
        load_corpus(tmp_path)


def test_fine_tuning_vocabulary_lists_unknown_characters(tmp_path):
    vocab = Vocab.from_text("abc\n")
    path = _write(tmp_path, b"abcxyz\n")
    with pytest.raises(DataError) as e:
        load_corpus(path, vocab=vocab)
    assert str(e.value) == f"{path}: characters not in the checkpoint's vocabulary: 'x', 'y', 'z'"
    ok = load_corpus(_write(tmp_path, b"cab\n", "ok.txt"), vocab=vocab)
    assert ok.vocab == vocab and list(ok.ids) == [3, 1, 2, 0]  # ids in sorted order: \n a b c
    grown = load_corpus(path, vocab=vocab, grow=True)        # the text's new characters added
    assert grown.vocab.chars == "\nabcxyz" and grown.vocab.decode(grown.ids) == "abcxyz\n"
    with pytest.raises(DataError) as e:
        load_corpus(path, vocab=vocab, hint="; a hint")
    assert str(e.value).endswith(": 'x', 'y', 'z'; a hint")


def test_builtin_corpus_streams_like_the_text():
    corpus = load_corpus(None)
    text = data.builtin_corpus().text
    assert corpus.source == data.BUILTIN_SOURCE
    assert corpus.vocab.decode(corpus.ids[:5000]) == text[:5000]
    assert len(corpus.ids) == len(text)


@pytest.mark.slow
def test_a_1gb_text_dry_runs_in_under_3gb(tmp_path):
    """Issue 3: a 1 GB text is encoded in chunks into a compact array, never held as a Python
    string; `train --dry-run` on it peaks under 3 GB of resident memory."""
    import resource
    import subprocess
    import sys

    unit = ("".join(f"line {i}: all the world's a stage, {i % 7} players.\n" for i in range(1000))
            ).encode("utf-8")
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        for _ in range(10**9 // len(unit) + 1):
            f.write(unit)
    result = subprocess.run([sys.executable, "-m", "charrnn", "train", str(path), "--dry-run",
                             "--json"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = __import__("json").loads(result.stdout)
    assert report["train_chars"] + report["val_chars"] > 10**9 - 64 * 64
    peak_bytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    assert peak_bytes < 3 * 1024**3
