"""Where a multi30k-en-de model attends, as a Markdown table: for each run folder (and weights), on the first N
validation pairs under teacher forcing, the teacher-forced loss, the mean of each target step's largest attention
weight, the attention's entropy over the source (divided by log of the source length: 0 = one word, 1 = uniform),
and the mean over sentences of the correlation between a target step's position and its most-attended source
position (a right alignment runs roughly along the diagonal: near 1; an attention locked onto one place: low or
negative; nan when no sentence's most-attended position ever moves).

    python benchmarks/attention_check.py runs/multi30k:epoch-2 runs/multi30k:last --pairs 200

A run folder is named with ``:WEIGHTS`` after it (``best``, ``last``, ``average``, ``epoch-N`` for the epochs an
averaging run still keeps); without it, the recipe's own choice.
"""

import argparse

import numpy as np

from lstmzoo.registry import get_recipe


def attention_summary(recipe, run_dir, weights=None, pairs=200):
    """``{"val_loss", "peak", "entropy", "diagonal"}`` of the run in ``run_dir`` (see the module docstring)."""
    from lstmzoo.zoo.multi30k import _batch
    model, hp = recipe.restore(run_dir, weights=weights)
    data = recipe.load_data({**hp, "eval_limit": pairs}, recipe.recorded_vocabulary(run_dir))
    src, src_lengths, tgt_in, _, tgt_lengths = _batch(data.val.src, data.val.tgt)
    keys, state = model.encode(src, src_lengths)
    embedded = model.tgt_embedding(tgt_in)
    if model.input_feeding:
        _, weights_all, _ = model._fed_teacher_forcing(embedded, state, keys, src_lengths)
    else:
        h, _ = model.decoder(embedded, state, lengths=tgt_lengths)
        _, weights_all = model.attention(np.ascontiguousarray(h.transpose(1, 0, 2)), keys, src_lengths)
    peaks, entropies, diagonals = [], [], []
    for b in range(len(src_lengths)):
        a = weights_all[b, :tgt_lengths[b], :src_lengths[b]].astype(np.float64)
        peaks.append(a.max(axis=1).mean())
        entropies.append((-(a * np.log(a + 1e-30)).sum(axis=1) / np.log(max(src_lengths[b], 2))).mean())
        where = a.argmax(axis=1)
        if len(where) > 2 and where.std() > 0:
            diagonals.append(np.corrcoef(np.arange(len(where)), where)[0, 1])
    return {"val_loss": recipe.mean_loss(model, data.val), "peak": float(np.mean(peaks)),
            "entropy": float(np.mean(entropies)),
            "diagonal": float(np.mean(diagonals)) if diagonals else float("nan")}   # nan: no step moved


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders, each optionally with :WEIGHTS")
    parser.add_argument("--pairs", type=int, default=200, help="validation pairs to look at (default 200)")
    args = parser.parse_args(argv)
    recipe = get_recipe("multi30k-en-de")
    print(f"first {args.pairs} validation pairs, teacher forcing\n")
    print("| run | weights | val loss | mean peak weight | entropy / log(source length) | diagonal correlation |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.runs:
        run_dir, _, weights = name.partition(":")
        s = attention_summary(recipe, run_dir, weights or None, args.pairs)
        print(f"| {run_dir} | {weights or recipe.keep} | {s['val_loss']:.3f} | {s['peak']:.3f} | {s['entropy']:.3f} "
              f"| {s['diagonal']:.3f} |")


if __name__ == "__main__":
    main()
