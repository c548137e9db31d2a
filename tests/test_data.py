import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from charrnn.data import Batches, DataError, Vocab, builtin_corpus, decode_bytes, read_text


@given(st.text(min_size=1))
def test_encode_decode_round_trip(text):
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert ids.dtype == np.uint8 if len(vocab) <= 256 else ids.dtype in (np.uint16, np.uint32)
    assert list(vocab.chars) == sorted(set(text))


def test_encode_names_unknown_characters():
    vocab = Vocab.from_text("hello")
    with pytest.raises(DataError) as e:
        vocab.encode("help!")
    assert str(e.value) == "characters not in the vocabulary: '!', 'p'"


def test_read_text_invalid_utf8_names_file_and_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"abc\xffdef")
    with pytest.raises(DataError) as e:
        read_text(path)
    assert str(e.value) == (f"{path}: invalid UTF-8 at byte offset 3 (byte 0xff); "
                            "charrnn reads UTF-8 text only")


def test_bom_is_removed_and_noted():
    text = decode_bytes("\ufeffhi there".encode("utf-8"), "x.txt")
    assert text.text == "hi there"
    assert text.notes == ("removed a UTF-8 byte order mark",)


def test_crlf_becomes_lf_and_is_noted_as_in_training():
    text = decode_bytes("\ufeffone\r\ntwo\r\nthree\r".encode("utf-8"), "x.txt")
    assert text.text == "one\ntwo\nthree\r"      # a lone CR is kept, as the training loader does
    assert text.notes == ("removed a UTF-8 byte order mark", "converted 2 CRLF line endings to LF")


def test_batches_are_parallel_streams_of_shifted_chunks():
    ids = np.arange(2 * 10 + 1, dtype=np.uint8)  # two streams of length 10, chunks of 3
    batches = Batches(ids, batch_size=2, seq_length=3)
    assert batches.per_pass == 3
    x, y, new_pass = batches.chunk(0)
    assert new_pass and x.dtype == np.int32
    np.testing.assert_array_equal(x, [[0, 1, 2], [10, 11, 12]])
    np.testing.assert_array_equal(y, [[1, 2, 3], [11, 12, 13]])
    x, y, new_pass = batches.chunk(1)
    assert not new_pass
    np.testing.assert_array_equal(x, [[3, 4, 5], [13, 14, 15]])
    x4, _, new_pass = batches.chunk(3)  # a new pass starts over
    assert new_pass
    np.testing.assert_array_equal(x4, batches.chunk(0)[0])


def test_batches_refuse_a_text_too_short():
    with pytest.raises(DataError) as e:
        Batches(np.zeros(100, np.uint8), batch_size=10, seq_length=10)
    assert str(e.value) == ("the training text has 100 characters; batch_size 10 x seq_length "
                            "10 needs at least 101")


def test_builtin_corpus_is_python_source():
    corpus = builtin_corpus()
    assert len(corpus.text) > 300_000
    assert "def " in corpus.text and "import " in corpus.text
    assert len(set(corpus.text)) > 60
    assert builtin_corpus().sha256 == corpus.sha256  # deterministic
