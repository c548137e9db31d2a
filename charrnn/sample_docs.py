"""Whole documents from a model of documents (train_cfg.documents lines or files): new things like
the ones it was trained on, each drawn from the start state until the model writes its end mark.

A document is drawn as sample.py draws text, with the end mark as the seed (what the model read
before every training document) and as the stop string; a prefix given with --seed follows the end
mark, so that the documents begin with it. A model with labels draws for one label at a time: its
vector folded into the biases (model.condition). Each document's log-probability is that of its
characters and its end mark at temperature 1 (the probability the model gives it as a whole);
`novel` says whether it is a document the model was not trained on (exactly: not one of the
training text's documents), and novel=True keeps drawing batches until it has that many novel
ones, or gives up after MAX_DRAWS_PER_DOCUMENT draws per document asked for.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from .data import DataError
from .documents import END
from .model import condition
from .sample import SampleConfig, generate_samples

MAX_DRAWS_PER_DOCUMENT = 50   # --novel gives up after this many draws per document asked for


@dataclass(frozen=True)
class Document:
    text: str                # the document, without its end mark (a --seed prefix included)
    logprob: float           # natural log of its probability with its end mark, at temperature 1
    complete: bool           # it ended with its end mark (not cut at num_chars)
    novel: bool | None       # not one of the training documents; None: unknown (no training text)


def conditioned(ckpt, label):
    """ckpt for one label (a name): its vector folded into the biases; DataError for a label
    the model does not have (listing its labels), or for a model with labels and no label."""
    if label is None:
        if ckpt.labels:
            raise DataError(f"the model was trained with labels; choose one with --label: "
                            f"{', '.join(ckpt.labels)}")
        return ckpt
    return dataclasses.replace(ckpt, params=condition(ckpt.params, ckpt.label_id(label)))


def draw(ckpt, prefix, cfg, rng, known=None, novel=False):
    """cfg.num_samples documents of ckpt (conditioned already), each starting with prefix:
    [Document]. known: the training documents (a set of str) to judge novelty, or None; novel:
    only documents not in known (DataError after MAX_DRAWS_PER_DOCUMENT tries per document).
    Empty documents are drawn again (they count as draws)."""
    if novel and known is None:
        raise DataError("--novel needs the training text to compare with, and the model's run "
                        "directory has none (data.npy)")
    wanted = cfg.num_samples
    found, seen, draws = [], set(), 0
    drawing = dataclasses.replace(cfg, stop=(END,))
    while len(found) < wanted:
        if draws >= MAX_DRAWS_PER_DOCUMENT * wanted:
            what = "new documents" if novel else "documents that are not empty"
            raise DataError(f"found {len(found)} of {wanted} {what} in {draws} draws; the model "
                            "mostly repeats its training documents or ends them at once (train "
                            "it longer, or raise the temperature)")
        batch = generate_samples(ckpt, END + prefix, drawing, rng, logprobs=True)
        draws += len(batch)
        for s in batch:
            doc = _document(prefix, s, known)
            if not doc.text:   # the end mark first: no document (the reader skips empty ones)
                continue
            if novel and (not doc.novel or doc.text in seen):
                continue
            seen.add(doc.text)
            found.append(doc)
    return found[:wanted]


def _document(prefix, s, known):
    complete = s.stop == END
    text = prefix + (s.text[:-len(END)] if complete else s.text)
    return Document(text, float(np.sum(s.logprobs)), complete,
                    None if known is None else text not in known)


@dataclass(frozen=True)
class Drawing:
    """A request for whole documents, checked and ready to run (api.sampler gives it for a model
    of documents, as it gives a sample.Generation for a stream model): the model (conditioned
    on its label), the prefix, the settings, the generator, where the training documents are
    (training: a zero-argument function giving their set, or None) and the notes."""
    ckpt: object
    prefix: str
    cfg: SampleConfig
    rng: np.random.Generator
    training: object = None
    novel: bool = False
    label: str | None = None
    notes: tuple = ()
    documents = True         # what callers test to tell a Drawing from a Generation

    def samples(self, novelty=False):
        """The documents ([Document]); novelty: judge each against the training documents
        (always done with novel)."""
        known = self.training() if (novelty or self.novel) and self.training else None
        return draw(self.ckpt, self.prefix, self.cfg, self.rng, known, self.novel)
