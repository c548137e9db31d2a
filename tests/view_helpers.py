"""What the view tests share: a small untrained checkpoint, a trained one, run directories for
plots, and a parser for viz pages."""

import json
import re
from html.parser import HTMLParser

import numpy as np

from charrnn.checkpoint import Checkpoint, save_checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Vocab
from charrnn.model import init_params

# every character in the tests' texts, the tricky ones included
VOCAB = "".join(sorted(set("\t\n !\"&'()/;<>ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                           "abcdefghijklmnopqrstuvwxyz,.:?-[]{}0123456789·")))


def make_checkpoint(cell="lstm", hidden_size=8, num_layers=2, seed=0, vocab=VOCAB,
                    dtype=np.float32, **train):
    """An untrained model whose output weights are scaled up, so that its guesses are sharp and
    its surprisal varies from character to character (as a trained model's does)."""
    rng = np.random.default_rng(seed)
    params = init_params(cell, len(vocab), hidden_size, num_layers, rng, dtype)
    params["Why"] = params["Why"] * dtype(60.0)
    return Checkpoint(params=params, vocab=Vocab(vocab),
                      model_cfg=ModelConfig(model=cell, hidden_size=hidden_size,
                                            num_layers=num_layers),
                      train_cfg=TrainConfig(**{"batch_size": 4, "seq_length": 16, **train}),
                      info={"data_source": "/data/fox.txt"})


class Page(HTMLParser):
    """A viz page, parsed: the character elements of the text (class list, text), every tag's
    attributes, the style sheet, the JSON data and the script."""

    def __init__(self, page):
        super().__init__(convert_charrefs=True)
        self.chars, self.tags, self.style, self.data, self.script = [], [], "", None, ""
        self._in_text = self._in_char = False
        self._where = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "div" and attrs.get("id") == "text":
            self._in_text = True
        elif self._in_text and tag == "span":
            self.chars.append([attrs.get("class", "").split(), ""])
            self._in_char = True
        elif tag == "style":
            self._where = "style"
        elif tag == "script":
            self._where = "data" if attrs.get("type") == "application/json" else "script"

    def handle_endtag(self, tag):
        if tag == "span":
            self._in_char = False
        elif tag == "div" and self._in_text and not self._in_char:
            self._in_text = False
        elif tag in ("style", "script"):
            self._where = None

    def handle_data(self, data):
        if self._in_char:
            self.chars[-1][1] += data
        elif self._where == "style":
            self.style += data
        elif self._where == "data":
            self.data = (self.data or "") + data
        elif self._where == "script":
            self.script += data

    def colours(self, prefix="s"):
        """Class name -> background colour, from the style sheet's '.sK { background: #...'."""
        return dict(re.findall(rf"\.({prefix}\d+) \{{ background: (#[0-9a-f]{{6}})", self.style))

    def json(self):
        return json.loads(self.data)


SMALL = ["--set", "max_iters=150", "--set", "eval_every=50", "--set", "hidden_size=16",
         "--set", "num_layers=2", "--set", "batch_size=4", "--set", "seq_length=16",
         "--set", "learning_rate=1.0e-2", "--set", "val_frac=0.0"]


def train_small(root, text, cell="lstm"):
    """Train a small model on text for a second (its guesses are then often right, sometimes
    wrong: a realistic range of surprisal); returns the run directory."""
    from cli_helpers import invoke

    (root / "train.txt").write_text(text, encoding="utf-8")
    result = invoke(["train", root / "train.txt", *SMALL, "--set", f"model={cell}",
                     "--out", root / "run", "--rng-seed", "0", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return root / "run"


def make_run(root, name, losses, checkpoint=True, **train):
    """A run directory: metrics.jsonl with an evaluation every 10 iterations, and a checkpoint."""
    run = root / name
    run.mkdir()
    with open(run / "metrics.jsonl", "w", encoding="utf-8") as f:
        for k, (train_loss, val_loss) in enumerate(losses, 1):
            f.write(json.dumps({"iteration": 10 * k, "train_loss": train_loss,
                                "val_loss": val_loss, "learning_rate": 0.002,
                                "seconds": 1.5 * k}) + "\n")
    if checkpoint:
        save_checkpoint(run / "last.npz", make_checkpoint(**train))
    return run
