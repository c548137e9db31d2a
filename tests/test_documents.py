import os
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn import data
from charrnn.data import DataError, Vocab
from charrnn.documents import (END, document_texts, documents_from_text, end_positions, hold_out,
                               load_documents, split_documents)


def write(path, content):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def decoded(corpus):
    return corpus.vocab.decode(corpus.ids)


# --- layout --------------------------------------------------------------------------------------

def test_lines_layout_puts_an_end_mark_before_each_document_and_after_the_last(tmp_path):
    path = write(tmp_path / "names.txt", "ann\nbob\ncy\n")
    corpus = load_documents([path], "lines")
    assert decoded(corpus) == END + "ann" + END + "bob" + END + "cy" + END
    assert corpus.documents == "lines" and corpus.val_start is None
    assert corpus.vocab.chars == END + "abcnoy"          # no newline; END sorts first: id 0
    np.testing.assert_array_equal(end_positions(corpus.ids, corpus.vocab.stoi[END]),
                                  [0, 4, 8, 11])
    assert corpus.label_ids is None and corpus.label_names == ()
    assert corpus.notes == () and corpus.source == str(path)
    assert corpus.sha256 == data.file_sha256(path)       # one file: its own sha256


def test_lines_with_labels_label_each_documents_start_mark_and_characters(tmp_path):
    path = write(tmp_path / "l.txt", "en\tcat\nfr\tchat\nen\tdog")
    corpus = load_documents([path], "lines", labels=True)
    assert decoded(corpus) == END + "cat" + END + "chat" + END + "dog" + END
    assert corpus.label_names == ("en", "fr")
    # END c a t | END c h a t | END d o g | last END: the last document's label
    np.testing.assert_array_equal(corpus.label_ids, [0] * 4 + [1] * 5 + [0] * 4 + [0])
    assert corpus.label_ids.dtype == np.uint8
    assert "\t" not in corpus.vocab.chars and "e" not in corpus.vocab.chars  # labels aren't text


def test_files_layout_and_labels_from_folder_names(tmp_path):
    write(tmp_path / "d" / "cats" / "a.txt", "meow\n")
    write(tmp_path / "d" / "dogs" / "b.txt", "woof")
    corpus = load_documents([tmp_path / "d"], "files", labels=True)
    assert decoded(corpus) == END + "meow\n" + END + "woof" + END
    assert corpus.label_names == ("cats", "dogs")
    np.testing.assert_array_equal(corpus.label_ids, [0] * 6 + [1] * 5 + [1])
    assert document_texts(corpus.ids, corpus.vocab) == ["meow\n", "woof"]
    assert corpus.source == str(tmp_path / "d")


def test_a_file_named_directly_in_the_current_folder_takes_its_name_as_label(tmp_path,
                                                                              monkeypatch):
    write(tmp_path / "poems" / "x.txt", "roses")
    monkeypatch.chdir(tmp_path / "poems")
    corpus = load_documents(["x.txt"], "files", labels=True)
    assert corpus.label_names == ("poems",)


def test_stream_corpora_keep_their_defaults(tmp_path):
    corpus = data.load_corpus(write(tmp_path / "t.txt", "abc"))
    assert (corpus.documents, corpus.label_names, corpus.label_ids, corpus.val_start) == \
        ("stream", (), None, None)


# --- lines: empty lines, no newline, labels, the end mark ----------------------------------------

def test_empty_lines_are_skipped_and_counted_in_one_note(tmp_path):
    path = write(tmp_path / "a.txt", "\n\nann\n\n\nbob\n\n")
    corpus = load_documents([path], "lines")
    assert document_texts(corpus.ids, corpus.vocab) == ["ann", "bob"]
    assert corpus.notes == ("skipped 5 empty lines",)


def test_a_text_without_newline_is_one_document_with_a_note(tmp_path):
    path = write(tmp_path / "words.txt", "just one")
    corpus = load_documents([path], "lines")
    assert document_texts(corpus.ids, corpus.vocab) == ["just one"]
    assert corpus.notes == ("has no newline: read as one document",)


def test_a_line_without_a_label_is_an_error_naming_file_and_line(tmp_path):
    path = write(tmp_path / "l.txt", "a\tone\n\nno label here\n")
    with pytest.raises(DataError) as e:
        load_documents([path], "lines", labels=True)
    assert str(e.value) == f"{path}:3: no label: with labels, each line is LABEL<TAB>TEXT"


def test_an_empty_label_is_an_error_too(tmp_path):
    path = write(tmp_path / "l.txt", "\tone\n")
    with pytest.raises(DataError, match=r"l\.txt:1: no label"):
        load_documents([path], "lines", labels=True)


def test_a_label_without_text_counts_as_an_empty_line(tmp_path):
    path = write(tmp_path / "l.txt", "a\tone\nb\t\n\nb\ttwo\n")
    corpus = load_documents([path], "lines", labels=True)
    assert document_texts(corpus.ids, corpus.vocab) == ["one", "two"]
    assert corpus.notes == ("skipped 2 empty lines",)
    assert corpus.label_names == ("a", "b")


def test_the_end_mark_in_a_text_named_directly_is_an_error_naming_file_and_line(tmp_path):
    path = write(tmp_path / "a.txt", f"one\ntw{END}o\n")
    with pytest.raises(DataError) as e:
        load_documents([path], "lines")
    assert str(e.value) == (f"{path}:2: contains the end mark U+0003 (END OF TEXT), which "
                            "separates documents and cannot be text too")


def test_tabs_and_carriage_returns_without_labels_are_characters(tmp_path):
    path = write(tmp_path / "a.txt", "a\tb\r\nc\rd\n")          # CRLF -> LF; a lone CR stays
    corpus = load_documents([path], "lines")
    assert document_texts(corpus.ids, corpus.vocab) == ["a\tb", "c\rd"]
    assert corpus.notes == ("converted 1 CRLF line endings to LF",)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_lines_split_across_chunks_read_as_in_one(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(data, "CHUNK_BYTES", chunk)
    path = write(tmp_path / "a.txt", "é\n\nab\r\n\r\ncdé\n\n\nx")
    corpus = load_documents([path], "lines")
    assert document_texts(corpus.ids, corpus.vocab) == ["é", "ab", "cdé", "x"]
    assert corpus.notes == ("converted 2 CRLF line endings to LF", "skipped 4 empty lines")
    labelled = write(tmp_path / "l.txt", "xy\tab\n\nz\tcdé\nxy\t\nz\te")
    corpus = load_documents([labelled], "lines", labels=True)
    assert decoded(corpus) == END + "ab" + END + "cdé" + END + "e" + END
    np.testing.assert_array_equal(corpus.label_ids, [0, 0, 0, 1, 1, 1, 1, 1, 1, 1])


def test_a_hundred_thousand_lines(tmp_path):
    lines = [f"name{k % 977}" for k in range(100_000)]
    path = write(tmp_path / "a.txt", "\n".join(lines) + "\n")
    corpus = load_documents([path], "lines")
    assert len(corpus.ids) == sum(len(line) + 1 for line in lines) + 1
    assert document_texts(corpus.ids, corpus.vocab) == lines


# --- folders -------------------------------------------------------------------------------------

def test_folders_are_read_recursively_in_sorted_order_of_relative_path(tmp_path):
    for rel in ["b.txt", "a/z.txt", "a/b/c.txt", "a-b.txt", "c/d.txt"]:
        write(tmp_path / "d" / rel, rel)
    corpus = load_documents([tmp_path / "d"], "files")
    assert document_texts(corpus.ids, corpus.vocab) == [
        "a/b/c.txt", "a/z.txt", "a-b.txt", "b.txt", "c/d.txt"]
    assert corpus.source == str(tmp_path / "d")


def test_include_patterns_filter_the_files_found_in_folders_by_name(tmp_path):
    write(tmp_path / "d" / "x.py", "py")
    write(tmp_path / "d" / "s" / "y.md", "md")
    write(tmp_path / "d" / "z.txt", "txt")
    named = write(tmp_path / "named.txt", "named")
    corpus = load_documents([tmp_path / "d", named], "files", include=("*.py", "*.md"))
    assert document_texts(corpus.ids, corpus.vocab) == ["md", "py", "named"]
    assert corpus.source == f"3 files under {tmp_path}"


def test_hidden_files_and_folders_in_a_folder_are_skipped_with_a_note(tmp_path):
    write(tmp_path / "d" / "a.txt", "a")
    write(tmp_path / "d" / ".secret", "s")
    write(tmp_path / "d" / ".git" / "config", "c")
    write(tmp_path / "d" / "sub" / ".h2", "h")
    hidden = write(tmp_path / ".named.txt", "named")      # named directly: read
    corpus = load_documents([tmp_path / "d", hidden], "files")
    assert document_texts(corpus.ids, corpus.vocab) == ["a", "named"]
    assert corpus.notes == ("skipped 2 hidden files and 1 hidden folder",)


def test_files_that_are_not_utf8_text_are_skipped_with_one_note(tmp_path):
    write(tmp_path / "d" / "a.bin", b"\x00\x01")
    write(tmp_path / "d" / "b.png", b"\x89PNG\r\n")
    write(tmp_path / "d" / "c.gz", b"\x1f\x8b\x08")
    write(tmp_path / "d" / "d.txt", f"has the end mark {END}")
    write(tmp_path / "d" / "e.txt", b"latin-1 caf\xe9")
    write(tmp_path / "d" / "ok.txt", "fine")
    corpus = load_documents([tmp_path / "d"], "files")
    assert document_texts(corpus.ids, corpus.vocab) == ["fine"]
    d = tmp_path / "d"
    assert corpus.notes == (f"skipped 5 files that are not UTF-8 text: {d}/a.bin, {d}/b.png, "
                            f"{d}/c.gz and 2 more",)
    assert corpus.sha256 == data.file_sha256(d / "ok.txt")


def test_a_file_not_text_that_marked_characters_leaves_no_trace(tmp_path):
    write(tmp_path / "d" / "a.txt", "Z" * 10 + "\x00")      # Z counted before the NUL
    write(tmp_path / "d" / "b.txt", "ok")
    corpus = load_documents([tmp_path / "d"], "files")
    assert corpus.vocab.chars == END + "ko"


def test_a_file_named_directly_that_is_not_text_is_an_error(tmp_path):
    path = write(tmp_path / "a.bin", b"abc\xffdef")
    with pytest.raises(DataError) as e:
        load_documents([path], "files")
    assert str(e.value) == (f"{path}: invalid UTF-8 at byte offset 3 (byte 0xff); "
                            "charrnn reads UTF-8 text only")


def test_a_path_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(DataError) as e:
        load_documents([tmp_path / "nope"], "lines")
    assert str(e.value) == f"{tmp_path / 'nope'}: no such file or folder"


def test_a_link_to_a_file_already_read_is_read_once_and_noted(tmp_path):
    write(tmp_path / "d" / "a" / "x.txt", "once")
    os.symlink(tmp_path / "d" / "a" / "x.txt", tmp_path / "d" / "b.txt")
    os.symlink(tmp_path / "d", tmp_path / "d" / "a" / "loop")     # a cycle: walked once
    corpus = load_documents([tmp_path / "d", tmp_path / "d" / "a" / "x.txt"], "files")
    assert document_texts(corpus.ids, corpus.vocab) == ["once"]
    assert corpus.notes == (
        f"skipped 2 files read already (another name of a file read): {tmp_path}/d/b.txt, "
        f"{tmp_path}/d/a/x.txt",)


def test_a_broken_link_in_a_folder_is_skipped_and_noted(tmp_path):
    write(tmp_path / "d" / "a.txt", "a")
    os.symlink(tmp_path / "gone.txt", tmp_path / "d" / "b.txt")
    corpus = load_documents(tmp_path / "d", "files", include="*.txt")
    assert corpus.notes == (f"skipped 1 file that cannot be read: {tmp_path}/d/b.txt "
                            "(a broken link)",)


def test_a_folder_without_text_is_an_error(tmp_path):
    write(tmp_path / "d" / "a.bin", b"\x00")
    write(tmp_path / "d" / ".hidden", "h")
    with pytest.raises(DataError) as e:
        load_documents([tmp_path / "d"], "files")
    d = tmp_path / "d"
    assert str(e.value) == (f"{d}: no UTF-8 text files found (skipped 1 file that is not UTF-8 "
                            f"text: {d}/a.bin; skipped 1 hidden file)")
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError) as e:
        load_documents([tmp_path / "e"], "lines")
    assert str(e.value) == f"{tmp_path / 'e'}: no UTF-8 text files found (no files)"


def test_empty_files_are_skipped_and_noted(tmp_path):
    write(tmp_path / "d" / "a.txt", "")
    write(tmp_path / "d" / "b.txt", "\ufeff")                # empty once its BOM goes
    write(tmp_path / "d" / "c.txt", "c")
    corpus = load_documents([tmp_path / "d"], "files")
    assert document_texts(corpus.ids, corpus.vocab) == ["c"]
    d = tmp_path / "d"
    assert corpus.notes == (f"skipped 2 empty files: {d}/a.txt, {d}/b.txt",)


def test_a_text_of_empty_lines_only_has_no_documents(tmp_path):
    path = write(tmp_path / "a.txt", "\n\n")
    with pytest.raises(DataError) as e:
        load_documents([path], "lines")
    assert str(e.value) == f"{path}: no documents (skipped 2 empty lines)"


def test_several_files_sum_their_notes_and_hash_their_digests_in_order(tmp_path):
    a = write(tmp_path / "a.txt", "\ufeffa\r\nb\n")
    b = write(tmp_path / "b.txt", "c\r\nd\r\n")
    corpus = load_documents([a, b], "lines")
    assert corpus.notes == ("removed a UTF-8 byte order mark from 1 file",
                            "converted 3 CRLF line endings to LF in 2 files")
    swapped = load_documents([b, a], "lines")
    assert swapped.sha256 != corpus.sha256
    assert document_texts(swapped.ids, swapped.vocab) == ["c", "d", "a", "b"]


# --- a vocabulary given --------------------------------------------------------------------------

def test_a_given_vocabulary_encodes_and_names_missing_characters(tmp_path):
    path = write(tmp_path / "a.txt", "ab\nba\n")
    vocab = Vocab(END + "abc")
    corpus = load_documents([path], "lines", vocab=vocab)
    assert corpus.vocab is vocab and decoded(corpus) == f"{END}ab{END}ba{END}"
    with pytest.raises(DataError) as e:
        load_documents([write(tmp_path / "b.txt", "abz!\n")], "lines", vocab=vocab,
                       vocab_source="run/best.npz")
    assert str(e.value) == f"{tmp_path / 'b.txt'}: characters not in run/best.npz: '!', 'z'"


def test_a_given_vocabulary_without_the_end_mark_is_an_error(tmp_path):
    with pytest.raises(DataError) as e:
        load_documents([write(tmp_path / "a.txt", "ab\n")], "lines", vocab=Vocab("\nab"))
    assert str(e.value) == ("the checkpoint's vocabulary has no end mark (U+0003): the model was "
                            "not trained on documents")


# --- caches --------------------------------------------------------------------------------------

def test_caches_are_memmaps_written_whole_with_no_temporary_left(tmp_path):
    path = write(tmp_path / "l.txt", "a\tone\nb\ttwo\n")
    cache, labels_cache = tmp_path / "data.npy", tmp_path / "labels.npy"
    corpus = load_documents([path], "lines", labels=True, cache=cache, labels_cache=labels_cache)
    assert isinstance(corpus.ids, np.memmap) and isinstance(corpus.label_ids, np.memmap)
    np.testing.assert_array_equal(np.load(cache), corpus.ids)
    np.testing.assert_array_equal(np.load(labels_cache), corpus.label_ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npy", "l.txt", "labels.npy"]


# --- held-out documents --------------------------------------------------------------------------

def labelled_corpus(tmp_path, n=40, **kwargs):
    lines = [f"{'xyz'[k % 3]}\tdoc{k}" + "!" * (k % 5) for k in range(n)]
    return load_documents([write(tmp_path / "l.txt", "\n".join(lines))], "lines", labels=True,
                          **kwargs)


def test_hold_out_follows_its_seeded_rule_and_keeps_documents_whole(tmp_path):
    corpus = labelled_corpus(tmp_path)
    docs = document_texts(corpus.ids, corpus.vocab)
    split = hold_out(corpus, 0.1, seed=3)
    chosen = np.random.default_rng(3).choice(40, 4, replace=False)       # round(0.1 * 40)
    held = [docs[k] for k in sorted(chosen)]
    train = [d for k, d in enumerate(docs) if k not in set(chosen)]
    end = split.vocab.stoi[END]
    assert split.ids[split.val_start] == end
    assert document_texts(split.ids[:split.val_start + 1], split.vocab) == train
    assert document_texts(split.ids[split.val_start:], split.vocab) == held
    assert held != docs[-4:]                                   # not just the last documents
    assert sorted(train + held) == sorted(docs) and len(split.ids) == len(corpus.ids)
    assert split.notes[-1] == "held out 4 of 40 documents for validation (seed 3)"
    again = hold_out(corpus, 0.1, seed=3)
    np.testing.assert_array_equal(again.ids, split.ids)
    assert again.val_start == split.val_start
    assert not np.array_equal(hold_out(corpus, 0.1, seed=4).ids, split.ids)


def test_label_ids_stay_with_their_documents_after_hold_out(tmp_path):
    corpus = labelled_corpus(tmp_path)
    split = hold_out(corpus, 0.25, seed=0)
    original = {text: corpus.label_ids[start - 1:stop + 1]
                for text, (start, stop) in zip(document_texts(corpus.ids, corpus.vocab),
                                               split_documents(corpus.ids, 0))}
    for text, (start, stop) in zip(document_texts(split.ids, split.vocab),
                                   split_documents(split.ids, 0)):
        # its start mark and characters keep their label; the END after it belongs to the next
        np.testing.assert_array_equal(split.label_ids[start - 1:stop],
                                      original[text][:-1])
    assert split.label_ids[-1] == split.label_ids[-2]     # the last END: the last document's


def test_hold_out_with_val_frac_0_returns_the_corpus_unchanged(tmp_path):
    corpus = labelled_corpus(tmp_path)
    assert hold_out(corpus, 0.0) is corpus


def test_hold_out_refuses_a_stream(tmp_path):
    corpus = data.corpus_from_text(f"ab{END}cd{END}", source="s")
    with pytest.raises(DataError) as e:
        hold_out(corpus, 0.5)
    assert str(e.value) == ("s: not read as documents (an end mark before each document and "
                            "after the last): whole documents cannot be held out")


def test_hold_out_of_one_document_holds_none_out(tmp_path):
    corpus = load_documents([write(tmp_path / "a.txt", "only\n")], "lines")
    same = hold_out(corpus, 0.1)
    assert same.val_start is None and same.ids is corpus.ids
    assert same.notes[-1] == ("has 1 document: none held out (whole documents are); validation "
                              "scores the training text")


def test_hold_out_holds_at_least_one_and_leaves_one(tmp_path):
    corpus = load_documents([write(tmp_path / "a.txt", "a\nb\n")], "lines")
    assert hold_out(corpus, 0.01).val_start == 2
    assert hold_out(corpus, 0.9).val_start == 2


def test_hold_out_may_write_over_the_caches_it_reads(tmp_path):
    cache, labels_cache = tmp_path / "data.npy", tmp_path / "labels.npy"
    corpus = labelled_corpus(tmp_path, cache=cache, labels_cache=labels_cache)
    before = np.array(corpus.ids), np.array(corpus.label_ids)
    split = hold_out(corpus, 0.2, cache=cache, labels_cache=labels_cache)
    np.testing.assert_array_equal(corpus.ids, before[0])           # the old mapping stays
    np.testing.assert_array_equal(np.load(cache), split.ids)
    np.testing.assert_array_equal(np.load(labels_cache), split.label_ids)
    assert isinstance(split.ids, np.memmap)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npy", "l.txt", "labels.npy"]
    assert not np.array_equal(split.ids, before[0])


# --- helpers and texts in memory -----------------------------------------------------------------

def test_split_documents_gives_the_characters_between_end_marks():
    ids = np.array([0, 5, 6, 0, 7, 0, 8])          # the 8 after the last END is no document
    np.testing.assert_array_equal(split_documents(ids, 0), [[1, 3], [4, 5]])
    assert document_texts(np.array([1, 0, 2, 2, 0, 1]), Vocab(END + "ab")) == ["bb"]


def test_documents_from_text(tmp_path):
    corpus = documents_from_text("ab\r\n\ncd", "lines")
    assert decoded(corpus) == f"{END}ab{END}cd{END}"
    assert corpus.notes == ("converted 1 CRLF line endings to LF", "skipped 1 empty line")
    corpus = documents_from_text("ab\ncd\n", "files", labels=True, label="poem")
    assert decoded(corpus) == f"{END}ab\ncd\n{END}" and corpus.label_names == ("poem",)
    with pytest.raises(DataError) as e:
        documents_from_text("x\n", "lines", vocab=Vocab(END + "ab"), source="eval.txt")
    assert str(e.value) == "eval.txt: characters not in the checkpoint's vocabulary: 'x'"


# --- round trips ---------------------------------------------------------------------------------

line_text = st.text(st.characters(blacklist_categories=("Cs",),
                                  blacklist_characters="\n\r\x00\x03\ufeff"), min_size=1)


@settings(max_examples=60, deadline=None)
@given(st.lists(line_text, min_size=1, max_size=12), st.sampled_from([3, 5, 1 << 24]))
def test_lines_round_trip(lines, chunk):
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(data, "CHUNK_BYTES", chunk):
        path = write(Path(folder) / "a.txt", "\n".join(lines) + "\n")
        corpus = load_documents([path], "lines")
        assert document_texts(corpus.ids, corpus.vocab) == lines
        labelled = write(Path(folder) / "l.txt", "".join(f"L{len(t) % 3}\t{t}\n" for t in lines))
        corpus = load_documents([labelled], "lines", labels=True)
        assert document_texts(corpus.ids, corpus.vocab) == lines
        starts = end_positions(corpus.ids, corpus.vocab.stoi[END])
        names = [corpus.label_names[k] for k in corpus.label_ids[starts]]
        assert names[:-1] == [f"L{len(t) % 3}" for t in lines] and names[-1] == names[-2]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",),
                                      blacklist_characters="\r\x00\x03\ufeff"), min_size=1),
                min_size=1, max_size=6))
def test_files_round_trip(texts):
    with tempfile.TemporaryDirectory() as folder:
        for k, text in enumerate(texts):
            write(Path(folder) / f"{k:02d}.txt", text)
        corpus = load_documents([folder], "files")
        assert document_texts(corpus.ids, corpus.vocab) == texts


@pytest.mark.parametrize("block", [1, 2, 3, 7])
def test_hold_out_is_the_same_in_blocks_of_any_size(block, tmp_path, monkeypatch):
    """hold_out copies block by block (bounded memory): a block boundary anywhere, in a
    document or on its end mark, changes nothing."""
    from charrnn import documents

    path = write(tmp_path / "a.txt", "".join(f"{'xy'[k % 2]}\t{'w' * (k % 5 + 1)}{k}\n"
                                             for k in range(23)))
    corpus = load_documents([path], "lines", labels=True)
    whole = hold_out(corpus, 0.3, seed=5)
    monkeypatch.setattr(documents, "BLOCK", block)
    cut = hold_out(corpus, 0.3, seed=5)
    assert cut.val_start == whole.val_start
    np.testing.assert_array_equal(cut.ids, whole.ids)
    np.testing.assert_array_equal(cut.label_ids, whole.label_ids)
    held = document_texts(whole.ids[whole.val_start:], whole.vocab)
    kept = document_texts(whole.ids[:whole.val_start + 1], whole.vocab)
    assert sorted(held + kept) == sorted(document_texts(corpus.ids, corpus.vocab))
    assert len(held) == round(0.3 * 23)


@pytest.mark.parametrize("block", [1, 3, 1 << 20])
def test_pick_chooses_exactly_k_uniformly(block, monkeypatch):
    """pick(n, k): exactly k flags, the same for the same seed; across seeds every document is
    held out about k / n of the time (the draw is uniform, block by block or whole)."""
    from charrnn import documents

    monkeypatch.setattr(documents, "PICK_BLOCK", block)
    assert documents.pick(10, 3, seed=1).sum() == 3
    np.testing.assert_array_equal(documents.pick(10, 3, seed=1), documents.pick(10, 3, seed=1))
    counts = sum(documents.pick(10, 3, seed=s).astype(int) for s in range(2000))
    assert counts.sum() == 6000
    assert np.all(np.abs(counts / 2000 - 0.3) < 0.05)     # 0.3 each; sd about 0.01


def test_labelled_lines_parsed_in_slices_keep_their_line_numbers(tmp_path, monkeypatch):
    from charrnn import documents

    monkeypatch.setattr(documents, "LINES_AT_ONCE", 2)
    path = write(tmp_path / "a.txt", "x\tone\ny\ttwo\n\nx\tthree\nfour\n")
    with pytest.raises(DataError) as e:
        load_documents([path], "lines", labels=True)
    assert str(e.value) == f"{path}:5: no label: with labels, each line is LABEL<TAB>TEXT"
    path.write_text("x\tone\ny\ttwo\n\nx\tthree\n", encoding="utf-8")
    corpus = load_documents([path], "lines", labels=True)
    assert document_texts(corpus.ids, corpus.vocab) == ["one", "two", "three"]
    assert corpus.notes == ("skipped 1 empty line",)


def test_documents_sha256_is_load_documents_without_encoding(tmp_path):
    from charrnn.documents import documents_sha256

    write(tmp_path / "d" / "a.txt", "one\ntwo\n")
    write(tmp_path / "d" / "b.bin", b"\x00\x01")
    write(tmp_path / "d" / "sub" / "c.txt", "three\n")
    for paths in ([tmp_path / "d"], [tmp_path / "d" / "a.txt"]):
        assert documents_sha256(paths, "lines") == load_documents(paths, "lines").sha256
