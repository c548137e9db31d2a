"""charrnn beside Karpathy's nanoGPT on tinyshakespeare (issue 20): nanoGPT's own split (the last
10 % held out), the same held-out characters scored by both, each with at least 32 characters of
context.

    python scripts/nanogpt_compare.py prepare TEXT --out DIR
    python scripts/nanogpt_compare.py score-nanogpt --nanogpt REPO --ckpt OUT_DIR --data DIR
    python scripts/nanogpt_compare.py score-charrnn --checkpoint RUN --data DIR
    python scripts/nanogpt_compare.py report A.json B.json ...

The steps (nanoGPT in a throw-away environment with PyTorch 2.13.0; 2 threads everywhere):

    git --git-dir=MIRROR archive HEAD | tar -x -C /work/peers/nanogpt        # karpathy/nanoGPT
    python scripts/nanogpt_compare.py prepare tinyshakespeare.txt \\
        --out /work/peers/nanogpt/data/shakespeare_char
    cd /work/peers/nanogpt && /work/peers/venv/bin/python train.py \\
        config/train_shakespeare_char.py --device=cpu --compile=False --block_size=64 \\
        --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0 \\
        --max_iters=N --lr_decay_iters=N          # N: what fills 10 minutes here
    /work/peers/venv/bin/python scripts/nanogpt_compare.py score-nanogpt \\
        --nanogpt /work/peers/nanogpt --ckpt /work/peers/nanogpt/out-shakespeare-char \\
        --data /work/peers/nanogpt/data/shakespeare_char > nanogpt.json
    charrnn train tinyshakespeare.txt --config shakespeare --set val_frac=0.1 --out RUN
    python scripts/nanogpt_compare.py score-charrnn --checkpoint RUN \\
        --data /work/peers/nanogpt/data/shakespeare_char > charrnn.json
    python scripts/nanogpt_compare.py report nanogpt.json charrnn.json

prepare writes what nanoGPT's data/shakespeare_char/prepare.py writes (train.bin and val.bin, the
first 90 % and the rest of the text as uint16 ids over the sorted characters, and meta.pkl), from
the given file instead of a download, and also val.txt: the characters both models are scored
on. nanoGPT holds out text[int(0.9 n):]; `charrnn train --set val_frac=0.1` holds out the last
int(0.1 n) characters, which is one character fewer here (n = 1,115,394). The scored text is the
shorter one, charrnn's held-out part, text[n - int(0.1 n):]; both models read it from its first
character and are scored on the predictions of its characters 32 and after (CONTEXT), so that
each has at least 32 characters of context (nanoGPT reads windows of its block size, 64, moved
by 32, and each window scores its last 32 predictions; charrnn reads the whole part, its state
carried, as `charrnn eval` does).

score-nanogpt runs in the throw-away environment (torch, and nanoGPT's model.py from --nanogpt);
score-charrnn in charrnn's. Each prints one JSON object: loss (nats/char), n_chars, and where
it came from.
"""

import argparse
import json
import math
import pickle
import sys
from pathlib import Path

CONTEXT = 32          # every scored character has at least this many characters before it


def held_out(text):
    """The characters both models are scored on: charrnn's held-out part at val_frac 0.1."""
    return text[len(text) - int(len(text) * 0.1):]


def prepare(args):
    import numpy as np

    text = Path(args.text).read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    n = len(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", text[:int(n * 0.9)]), ("val", text[int(n * 0.9):])):
        np.array([stoi[c] for c in part], dtype=np.uint16).tofile(out / f"{name}.bin")
    meta = {"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}
    with open(out / "meta.pkl", "wb") as f:
        pickle.dump(meta, f)
    (out / "val.txt").write_text(held_out(text), encoding="utf-8")
    print(json.dumps({"train": int(n * 0.9), "val": n - int(n * 0.9),
                      "scored_text": len(held_out(text)), "vocab": len(chars)}))


def score_nanogpt(args):
    import torch

    sys.path.insert(0, str(Path(args.nanogpt).resolve()))
    from model import GPT, GPTConfig        # nanoGPT's model.py

    torch.set_num_threads(args.threads)
    ckpt = torch.load(Path(args.ckpt) / "ckpt.pt", map_location="cpu")
    model = GPT(GPTConfig(**ckpt["model_args"]))
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    model.load_state_dict(state)
    model.eval()
    with open(Path(args.data) / "meta.pkl", "rb") as f:
        stoi = pickle.load(f)["stoi"]
    text = (Path(args.data) / "val.txt").read_text(encoding="utf-8")
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    block = ckpt["model_args"]["block_size"]
    step = block - CONTEXT + 1        # predictions scored per window: those with >= CONTEXT before
    total, count = 0.0, 0
    with torch.no_grad():
        # window at s reads ids[s:s + block]; its prediction i (of ids[s + i + 1], after i + 1
        # characters) is scored when i + 1 >= CONTEXT, i.e. targets s + CONTEXT .. s + block
        starts = list(range(0, len(ids) - CONTEXT, step))
        for lo in range(0, len(starts), 256):
            batch = starts[lo:lo + 256]
            xs, ys = [], []
            for s in batch:
                x = ids[s:s + block]
                y = ids[s + 1:s + block + 1]
                keep = len(y)
                x = x[:keep]
                xs.append(torch.nn.functional.pad(x, (0, block - len(x))))
                ys.append(torch.nn.functional.pad(y, (0, block - len(y)), value=-1))
            x, y = torch.stack(xs), torch.stack(ys)
            logits, _ = model(x, y)
            logp = torch.log_softmax(logits.double(), dim=-1)
            y = y.clone()
            y[:, :CONTEXT - 1] = -1                       # fewer than CONTEXT characters before
            scored = y >= 0
            picked = logp.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            total -= float(picked[scored].sum())
            count += int(scored.sum())
    print(json.dumps({"who": f"nanoGPT {ckpt['model_args']} iter {ckpt['iter_num']}",
                      "loss": round(total / count, 4), "n_chars": count,
                      "best_val_loss_own": round(float(ckpt["best_val_loss"]), 4)}))


def score_charrnn(args):
    import numpy as np

    import charrnn

    text = (Path(args.data) / "val.txt").read_text(encoding="utf-8")
    # exact: one pass over the whole part, the state carried (charrnn eval --exact)
    logp = np.asarray(charrnn.score(args.checkpoint, text, exact=True)["logprobs"])   # chars 1 ..

    kept = logp[CONTEXT - 1:]                      # characters CONTEXT .. len - 1
    print(json.dumps({"who": f"charrnn {args.checkpoint}",
                      "loss": round(float(-kept.sum() / len(kept)), 4), "n_chars": len(kept)}))


def report(args):
    rows = [json.loads(Path(p).read_text().strip().splitlines()[-1]) for p in args.results]
    print("| model | held-out loss (nats/char) | bits/char | characters |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['who']} | {r['loss']:.4f} | {r['loss'] / math.log(2):.4f} | "
              f"{r['n_chars']:,} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="nanoGPT's data files and the scored text")
    p.add_argument("text")
    p.add_argument("--out", required=True)
    p.set_defaults(run=prepare)
    p = sub.add_parser("score-nanogpt", help="score nanoGPT's checkpoint (torch)")
    p.add_argument("--nanogpt", required=True, help="a checkout of karpathy/nanoGPT")
    p.add_argument("--ckpt", required=True, help="its out_dir (ckpt.pt)")
    p.add_argument("--data", required=True, help="prepare's --out")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(run=score_nanogpt)
    p = sub.add_parser("score-charrnn", help="score a charrnn checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="prepare's --out")
    p.set_defaults(run=score_charrnn)
    p = sub.add_parser("report", help="a table of the scores")
    p.add_argument("results", nargs="+")
    p.set_defaults(run=report)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
