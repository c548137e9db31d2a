"""The Python API: what the command line does, as functions that return values and raise typed
errors (for notebooks and scripts). cli.py is a thin layer over these.

    import charrnn
    summary = charrnn.fit("input.txt", hidden_size=64, max_iters=300)   # = train --json
    model = charrnn.load(summary["run_dir"])                            # a Checkpoint
    charrnn.generate(model, "ROMEO:", 200, temperature=0.8, rng_seed=1)  # -> str
    charrnn.score(model, "some text")                                    # -> dict

Errors (all but Interrupted subclass ValueError or RuntimeError): ConfigError (a config key,
type or value), DataError (an unusable text), CheckpointError (an unreadable checkpoint),
RunError (a run directory in use, holding a run, or not writable), TrainingError (training kept
diverging), Interrupted (SIGINT or SIGTERM during fit; last.npz was written).
"""

import time

import numpy as np

from . import plan as planning, runs
from .accuracy import accuracy_report, check_completion, completion_counts
from .checkpoint import load_checkpoint
from .config import ConfigError
from .evaluate import score_text
from .parallel import Shards
from .sample import SampleConfig, default_seed, generate_samples, prepare_seed
from .train import dry_run as _dry_run
from .train import train


def fit(file=None, *, config=None, sets=(), out=None, resume=None, init_from=None,
        new_text=False, rng_seed=None, progress=False, log=None, runs_dir=runs.RUNS_DIR, **keys):
    """Train a run, as `charrnn train`; returns its summary (what `train --json` prints).

    file: the UTF-8 training text (None: the built-in corpus; with resume, the run's own text).
    config: a YAML file of config keys; sets: 'key=value' strings (as --set); keys: config keys
    as keyword arguments (hidden_size=64), which win over both.
    out: the run directory to make (default runs_dir/<time>-<file name>, unique).
    resume: a run directory to continue exactly; init_from: a checkpoint or run directory whose
    weights start a new run. new_text: with resume, go on with file, another text (the weights,
    optimizer state and iteration carried on; the text read from its beginning; see runs.py).
    progress: show the tqdm bar on stderr; log: a function that takes each log line
    (evaluations, notes), or None for silence.
    """
    started = time.monotonic()             # a time budget counts from here
    if resume is not None and (init_from is not None or out is not None):
        raise ConfigError("resume continues a run in its own directory: it cannot be combined "
                          "with init_from or out")
    if new_text and resume is None:
        raise ConfigError("new_text continues a run on another text: it needs resume")
    if resume is not None:
        plan = planning.plan_resume(resume, file, config, sets, keys, new_text)
    else:
        plan = planning.plan_new_run(file, config, sets, out, init_from, keys, runs_dir)
    try:
        return train(plan.corpus, plan.model_cfg, plan.train_cfg, plan.run_dir,
                     rng_seed=rng_seed, progress=progress, log=log, resume=plan.resume,
                     init_from=plan.init_from, changed=plan.changed, started=started,
                     notes=plan.notes)
    finally:
        plan.release()


def dry_run(file=None, *, config=None, sets=(), init_from=None, rng_seed=None, **keys):
    """What `charrnn train --dry-run` reports, as a dict (with what charrnn would choose for
    the keys left open, in notes); writes nothing."""
    _, train_cfg, ckpt = planning.new_run_config(config, sets, init_from, keys)
    corpus = planning.read_corpus(file, None, ckpt, train_cfg.vocab)
    model_cfg, train_cfg, chosen = planning.open_choices(corpus, config, sets, keys, ckpt)
    report = _dry_run(corpus, model_cfg, train_cfg, rng_seed)
    report["notes"] += [chosen] if chosen else []
    return report


def load(path=None, runs_dir=runs.RUNS_DIR):
    """A Checkpoint from a checkpoint file or a run directory (its best.npz, else last.npz);
    None: the run under runs_dir whose checkpoint was written last. Its .path says which file."""
    return load_checkpoint(path if path is not None else runs.latest_run(runs_dir))


def generate(model, seed=None, num_chars=200, *, temperature=1.0, top_k=0, top_p=1.0,
             greedy=False, stop=(), num_samples=None, unk="error", rng_seed=None):
    """Text that follows seed (default: default_seed), as `charrnn sample` draws it: the
    num_chars new characters (fewer if a stop string ends it), without the seed.

    num_samples=None gives one str; num_samples=K a list of K independent samples.
    unk: 'error', 'skip' or 'replace' for seed characters outside the model's vocabulary.
    The same rng_seed and options give the same text."""
    seed = default_seed(model.vocab) if seed is None else seed
    fed, _ = prepare_seed(model.vocab, seed, unk)
    cfg = SampleConfig(num_chars=num_chars, temperature=temperature, top_k=top_k, top_p=top_p,
                       greedy=greedy, num_samples=num_samples or 1, stop=tuple(stop))
    samples = generate_samples(model, fed, cfg, np.random.default_rng(rng_seed))
    texts = [s.text for s in samples]
    return texts[0] if num_samples is None else texts


def score(model, text, *, unk="error", exact=False, accuracy=False):
    """Score a str under a model, as `charrnn eval` does: loss (nats/char), bits_per_char,
    perplexity, n_chars (every character but the first, which is only context; with the model's
    completion setting, the completions' characters), and logprobs: each scored character's
    log-probability in nats (float64 array; -sum is loss * n_chars). unk='skip' leaves out
    characters outside the vocabulary (counted in 'skipped'); exact: one pass over the whole
    text, as `eval --exact`. accuracy: also what `eval --accuracy --json` adds (a model with a
    completion setting only, else ConfigError): accuracy (teacher-forced), correct_chars,
    exact_match (greedy), exact_lines, n_lines and, for labelled lines, levels."""
    if accuracy:
        check_completion(model)
    with Shards(model.train_cfg.threads) as shards:   # as the run was trained
        scored = score_text(model, text, unk, shards, exact, hits=accuracy)
        report = accuracy_report(completion_counts(model, scored, shards)) if accuracy else {}
    completion = model.train_cfg.completion
    return dict(scored.summary(), **({"completion": completion} if completion else {}), **report,
                logprobs=scored.scored_logprobs(), skipped=scored.n_skipped)

