"""Choices for a new run whose config leaves them open: the model's size and the run's length,
from the text's length and the time budget.

When a run is started without any of the model keys (model, hidden_size, num_layers, dropout)
from a file, --set or arguments, charrnn picks them; without max_iters or time it also gives the
run a time budget; and without any of the schedule keys (learning_rate, lr_schedule,
warmup_iters, lr_floor, lr_decay) it uses its budget schedule. Every choice is said in the log
and kept in the run's config, as if it had been given. A key given by the user is never changed.

    model        GRU, 2 layers: here it learns faster per second than an LSTM of the same width
                 (3 gate blocks instead of 4; configs/shakespeare.yaml)
    hidden_size  the widest of WIDTHS whose run, in the budget, reads at least
                 CHARS_PER_PARAM characters per parameter and whose parameters are no more
                 than PARAMS_PER_CHAR per training character (a small text needs a small model)
    dropout      from the passes over the text that the budget allows: none below 2, then up to
                 MAX_DROPOUT
    direct_*     with the model, for a text of at least DIRECT_MIN_CHARS training characters:
                 hashed n-gram features of DIRECT_ORDER orders, DIRECT_SIZE rows each (direct.py;
                 on tinyshakespeare in 10 minutes they took the preset from 1.4996 to 1.4710,
                 docs/best-model.md), unless given
    time         DEFAULT_BUDGET, or less when MAX_PASSES passes over the text take less; for a
                 long text, one pass (GROW_PASSES) when that takes longer, up to LONG_BUDGET:
                 said with the line of choices, and how to make it shorter
    schedule     Adam at LEARNING_RATE, WARMUP_ITERS of warm-up, cosine to LR_FLOOR at the end
    eval_every   about EVALUATIONS evaluations in the run (in max_iters, when it is given)
    val_frac     5 %, at most VAL_CHARS characters (scoring a long held-out part every
                 evaluation would eat the budget)

CHARS_PER_PARAM comes from 10-minute runs on tinyshakespeare (1.1 M characters; GRU, 2 layers,
dropout 0.2 to 0.3, cosine schedule; docs/best-model.md, configs/shakespeare.yaml): 256 units read 17
characters a parameter in the budget and reached 1.504 nats/char (cut short by a busy machine),
384 units 4.3 and 1.495, 512 units 1.5 and 1.522: the widest that reads about 4 is the best.

The widths are judged by their speed on this machine: one of them (REFERENCE_WIDTH) is timed on
a few throwaway iterations (plan.py passes timing.seconds_per_char in as seconds_per_char; a
budgeted run's plan in train.py times its iterations with the same timing module), and the
others are scaled from it by their matmul FLOPs.
"""

import math

WIDTHS = (64, 96, 128, 192, 256, 384, 512)
REFERENCE_WIDTH = 256
NUM_LAYERS = 2
CHARS_PER_PARAM = 4.0          # at least this many characters read per parameter in the budget
PARAMS_PER_CHAR = 3.0          # at most this many parameters per training character
DEFAULT_BUDGET = 600.0         # seconds: 10 minutes
LONG_BUDGET = 3000.0           # seconds: the most a long text's budget grows to (50 minutes)
GROW_PASSES = 1.0              # a long text's budget: the time of this many passes over it
MIN_BUDGET = 10.0
MAX_PASSES = 50                # char-rnn's max_epochs
MAX_DROPOUT = 0.3
LEARNING_RATE = 2.0e-3
WARMUP_ITERS = 100
LR_FLOOR = 0.05
EVALUATIONS = 10
VAL_CHARS = 250_000
BATCH_SIZE, SEQ_LENGTH = 64, 100

DIRECT_ORDER, DIRECT_SIZE = 4, 16384
DIRECT_MIN_CHARS = 500_000

MODEL_KEYS = ("model", "hidden_size", "num_layers", "dropout")
DIRECT_KEYS = ("direct_order", "direct_size")
LENGTH_KEYS = ("max_iters", "time")
SCHEDULE_KEYS = ("learning_rate", "lr_schedule", "warmup_iters", "lr_floor", "lr_decay")


def gru_params(H, V, L=NUM_LAYERS):
    """Parameters of an L-layer GRU of width H over V characters (model.param_shapes)."""
    return V * H + L * (2 * H * 3 * H + 3 * H + H) + H * V + V


def gru_flops(H, V, L=NUM_LAYERS):
    """Matmul work per training character, up to a constant (scripts/bench.py counts it)."""
    return L * 2 * H * 3 * H + H * V


def val_frac(n_chars):
    """The fraction of a text of n_chars characters held out: 5 %, at most VAL_CHARS."""
    return round(min(0.05, VAL_CHARS / n_chars), 6)


def batch_size(n_train, seq_length):
    """BATCH_SIZE streams, fewer for a training text too short to give each stream four chunks
    of seq_length."""
    return max(1, min(BATCH_SIZE, (n_train - 1) // (4 * seq_length)))


def shape(n_train):
    """batch_size and seq_length for a training text of n_train characters: BATCH_SIZE streams
    of SEQ_LENGTH, fewer streams (and then shorter chunks) for a text too short to give each
    stream four chunks."""
    seq = max(1, min(SEQ_LENGTH, (n_train - 1) // 4))
    return batch_size(n_train, seq), seq


def choose(n_chars, vocab_size, given, seconds_per_char, budget=None):
    """The open keys' values, as a dict, and a line saying what was chosen ({} and "" when the
    user gave the model or the run's length: then nothing is chosen).

    n_chars: the text's length; given: the keys the user set, with their values;
    seconds_per_char(model, N, T): the measured training time per character at batch N and
    seq_length T of a model given as a dict of model keys (the user's, or a GRU of
    REFERENCE_WIDTH, which the others are scaled from); budget: the run's time budget in
    seconds, if the user gave one."""
    auto_model = not any(k in given for k in MODEL_KEYS)
    auto_length = budget is None and not any(k in given for k in LENGTH_KEYS)
    if not (auto_model or auto_length):
        return {}, ""
    V = vocab_size
    choices = {}
    if "val_frac" not in given:
        choices["val_frac"] = val_frac(n_chars)
    n_train = int(n_chars * (1 - choices.get("val_frac", given.get("val_frac", 0.05))))
    batch, seq = shape(n_train)
    batch, seq = given.get("batch_size", batch), given.get("seq_length", seq)
    seconds = budget if budget is not None else DEFAULT_BUDGET
    if auto_model:
        gru = {"model": "gru", "num_layers": NUM_LAYERS}
        reference = seconds_per_char({**gru, "hidden_size": REFERENCE_WIDTH}, batch, seq)
        per_char = {w: reference * gru_flops(w, V) / gru_flops(REFERENCE_WIDTH, V)
                    for w in WIDTHS}
        fits = [w for w in WIDTHS
                if seconds / per_char[w] >= CHARS_PER_PARAM * gru_params(w, V)
                and gru_params(w, V) <= PARAMS_PER_CHAR * n_train]
        H = max(fits) if fits else WIDTHS[0]
        speed = per_char[H]
        passes = seconds / speed / n_train
        dropout = 0.0 if passes < 2 else round(min(MAX_DROPOUT, 0.1 * math.log2(passes)), 2)
        choices.update(gru, hidden_size=H, dropout=dropout)
        if n_train >= DIRECT_MIN_CHARS and not any(k in given for k in DIRECT_KEYS):
            choices.update(direct_order=DIRECT_ORDER, direct_size=DIRECT_SIZE)
        choices.update({k: v for k, v in (("batch_size", batch), ("seq_length", seq))
                        if k not in given})
    else:
        speed = seconds_per_char({k: given[k] for k in MODEL_KEYS if k in given}, batch, seq)
    grown = ""
    if auto_length:
        seconds, grown = _budget(n_train, speed)
        choices["time"] = f"{round(seconds)}s"
    if not any(k in given for k in SCHEDULE_KEYS):
        choices.update(learning_rate=LEARNING_RATE, lr_schedule="cosine",
                       warmup_iters=WARMUP_ITERS, lr_floor=LR_FLOOR)
    if "eval_every" not in given and "max_iters" in given:    # the run's length is given
        choices["eval_every"] = max(1, given["max_iters"] // EVALUATIONS)
    elif "eval_every" not in given:                            # ... or the budget's
        choices["eval_every"] = max(10, int(seconds / speed / (batch * seq) / EVALUATIONS))
    said = ", ".join(f"{k}={v}" for k, v in choices.items())
    return choices, f"chose {said} for {n_chars:,} characters{grown}"


def _budget(n_train, speed):
    """The time budget in seconds of a run over n_train training characters at speed seconds
    per character, and what to say of it ("" for a budget of DEFAULT_BUDGET or less): 10
    minutes, less for a short text, and for a long one the time of a pass, LONG_BUDGET at most
    (50 MB of text: 10 minutes read 14 % of it, and a 7-gram model counted from all of it was
    better, docs/best-model.md)."""
    cap = max(DEFAULT_BUDGET, min(LONG_BUDGET, GROW_PASSES * n_train * speed))
    seconds = max(MIN_BUDGET, min(cap, MAX_PASSES * n_train * speed))
    if seconds <= DEFAULT_BUDGET:
        return seconds, ""
    return seconds, (f"; a long text: {_minutes(seconds)} planned, to read it about "
                     f"{seconds / speed / n_train:.2g} times; give --time (e.g. --time 10m) for "
                     "less, or stop it with Ctrl-C, which keeps the best checkpoint")


def _minutes(seconds):
    """A duration in words: '55 minutes', '1 hour'."""
    minutes = round(seconds / 60)
    return "1 hour" if minutes == 60 else f"{minutes} minutes"
