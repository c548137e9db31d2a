"""The PyTorch reference for scripts/bench.py: the same model and the same work, in PyTorch.

    TORCH_PYTHON scripts/bench_torch.py TEXT MODEL HIDDEN LAYERS BATCH SEQ_LENGTH ITERS [THREADS]

Run by scripts/bench.py --torch, one configuration per process (so that its peak memory is that
configuration's), with an interpreter that has torch (a throw-away environment:
`python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0`; NumPy is not
needed). It does not import charrnn (only bench.py, its neighbour, for the memory measurement)
and prints one JSON object on stdout.

The work matches charrnn's training iteration: an embedding of width HIDDEN, nn.RNN (tanh) /
nn.LSTM / nn.GRU with LAYERS layers, a linear output layer, cross-entropy over the chunk, truncated
BPTT with the hidden state carried from chunk to chunk and detached (reset at each new pass),
Adam (lr 2e-3), gradients clipped to global norm 5; float32, THREADS threads
(torch.set_num_threads; default 2). Sampling: 2,000
characters at batch 1, one step per character under torch.inference_mode, drawn with
torch.multinomial from the softmax, as a PyTorch char-rnn samples.
"""

import json
import sys
import time

import torch
from torch import nn

from bench import peak_rss_mb   # scripts/ is this script's directory: on sys.path

WARMUP = 3
SAMPLE_CHARS = 2000


class CharModel(nn.Module):
    def __init__(self, cell, V, H, L):
        super().__init__()
        self.embed = nn.Embedding(V, H)
        kind = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = kind(H, H, L)          # (T, N, H) in and out; tanh for nn.RNN
        self.out = nn.Linear(H, V)

    def forward(self, ids, state):
        h, state = self.rnn(self.embed(ids), state)
        return self.out(h), state


def detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def main():
    path, cell = sys.argv[1], sys.argv[2]
    H, L, N, T, iters = map(int, sys.argv[3:8])
    torch.set_num_threads(int(sys.argv[8]) if len(sys.argv) > 8 else 2)
    torch.manual_seed(0)
    text = open(path, encoding="utf-8").read().replace("\r\n", "\n")
    chars = sorted(set(text))
    lookup = {ch: i for i, ch in enumerate(chars)}
    ids = torch.tensor([lookup[ch] for ch in text], dtype=torch.long)
    V = len(chars)
    # batch_size parallel streams, each cut into seq_length chunks, as charrnn's Batches
    per_stream = (len(ids) - 1) // N
    streams = ids[:N * per_stream + 1]
    inputs = streams[:N * per_stream].view(N, per_stream).t().contiguous()      # (S, N)
    targets = streams[1:N * per_stream + 1].view(N, per_stream).t().contiguous()
    per_pass = per_stream // T

    model = CharModel(cell, V, H, L)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    state = None
    for k in range(WARMUP + iters):
        if k == WARMUP:
            start = time.perf_counter()
        j = k % per_pass
        if j == 0:
            state = None
        x, y = inputs[j * T:(j + 1) * T], targets[j * T:(j + 1) * T]
        logits, state = model(x, detach(state))
        loss = loss_fn(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    train_cps = N * T * iters / (time.perf_counter() - start)

    model.eval()
    with torch.inference_mode():
        x = torch.zeros((1, 1), dtype=torch.long)
        state = None
        out = []
        start = time.perf_counter()
        for _ in range(SAMPLE_CHARS):
            logits, state = model(x, state)
            probs = torch.softmax(logits[0, 0], dim=0)
            x[0, 0] = torch.multinomial(probs, 1)[0]
            out.append(int(x[0, 0]))
        sample_cps = SAMPLE_CHARS / (time.perf_counter() - start)
    peak_mb = peak_rss_mb()
    print(json.dumps({"train_cps": train_cps, "sample_cps": sample_cps, "peak_mb": peak_mb,
                      "version": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
