import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from charrnn import data
from charrnn.data import (Batches, DataError, Vocab, builtin_corpus, completion_mask, decode_bytes,
                          read_text, strip_labels, take_chars)


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


# --- completions ---------------------------------------------------------------------------------

def _mask_loop(ids, separator, end):
    """The rule of completion_mask, one character at a time: the reference for its vectorised
    form."""
    mask, last = [], None
    for i in ids:
        mask.append(last == separator)
        if i in (separator, end):
            last = i
    return np.array(mask, dtype=bool)


def test_completion_mask_scores_after_the_separator_through_the_end_mark():
    text = "ab@12.\ncd@3.\n@.\nx@4"
    vocab = Vocab.from_text(text)
    mask = completion_mask(vocab.encode(text), vocab.stoi["@"], vocab.stoi["."])
    assert "".join(c if m else "_" for c, m in zip(text, mask)) == "___12.____3.__.___4"


@given(st.lists(st.integers(0, 4), max_size=60), st.integers(1, 7))
def test_completion_mask_matches_the_loop_in_blocks_of_any_size(ids, block):
    ids = np.array(ids, dtype=np.uint8)
    old, data.MASK_BLOCK = data.MASK_BLOCK, block
    try:
        np.testing.assert_array_equal(completion_mask(ids, 1, 2), _mask_loop(ids.tolist(), 1, 2))
    finally:
        data.MASK_BLOCK = old


def test_batches_turn_unscored_targets_into_minus_one():
    ids = np.arange(2 * 10 + 1, dtype=np.uint8)
    mask = np.zeros(21, dtype=bool)
    mask[[2, 3, 13]] = True              # targets of columns 1, 2 of stream 0; column 2 of stream 1
    x, y, _ = Batches(ids, batch_size=2, seq_length=3, mask=mask).chunk(0)
    np.testing.assert_array_equal(x, [[0, 1, 2], [10, 11, 12]])
    np.testing.assert_array_equal(y, [[-1, 2, 3], [-1, -1, 13]])
    assert y.dtype == np.int32


def test_strip_labels_keeps_the_rest_and_the_levels():
    text = "1\t2\tab@1.\n10\t3\tc@2.\n"
    kept, levels = strip_labels(text)
    assert take_chars(text, kept) == "ab@1.\nc@2.\n"
    assert levels == ((1, 2), (10, 3), None)
    assert strip_labels("ab@1.\nc@2.\n") == (None, None)


def test_strip_labels_refuses_a_line_without_one_among_labelled_lines():
    with pytest.raises(DataError) as e:
        strip_labels("1\t1\ta@1.\nb@2.\n")
    assert str(e.value) == ("line 2 has no L<TAB>N<TAB> label, but other lines have one "
                            "(scripts/learning_to_execute.py --labels writes them on every line)")
