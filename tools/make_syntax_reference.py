#!/usr/bin/env python3
"""Reference for `attnscope syntax`: the same definitions (include/attnscope/analysis.h, issue 15)
implemented independently over transformers' eager attentions, written to
tests/fixtures/syntax/reference.json for tests/python/test_syntax.py.

Run in bench/.venv (bench/setup_venv.sh: torch, transformers<5, the real all-MiniLM-L6-v2):
    bench/.venv/bin/python tools/make_syntax_reference.py

Models and sentences (the first N of data/ud-english-ewt/en_ewt-ud-dev.conllu, skipped ones
included): the real all-MiniLM-L6-v2 (200), and the random fixtures bert (max 40 positions, so
many sentences are skipped) and gpt2 (causal, byte-level BPE; 150 each).

Deterministic: float32 eager attention on the CPU, pooled to words in float64; the prediction is
numpy's argmax (the first maximum, so ties go to the lowest word index). attnscope's forward pass
differs from PyTorch's in the last bits (1e-5 on the fixtures, 1e-4 on MiniLM), so where a
head's decision between the gold head and another word rests on a margin below TIE_TOL the two
may legitimately disagree: every (relation, head) records how many of its arcs are so close
("ambiguous"), and the test allows its count of correct arcs to differ by at most that many.
Relation counts, skipped sentences and the baseline offsets do not depend on the attention and
must agree exactly."""
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModel, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from minilm_dir import minilm_dir  # noqa: E402

CONLLU = os.path.join(ROOT, "data", "ud-english-ewt", "en_ewt-ud-dev.conllu")
OUT = os.path.join(ROOT, "tests", "fixtures", "syntax", "reference.json")
TIE_TOL = 1e-4


def read_conllu(path, limit):
    """[(forms, heads (1-based, 0 root), relations)] of the first `limit` sentences."""
    sents, forms, heads, rels = [], [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                if forms:
                    sents.append((forms, heads, rels))
                    forms, heads, rels = [], [], []
                    if len(sents) == limit:
                        break
                continue
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if not cols[0].isdigit():  # ranges 3-4, empty nodes 5.1
                continue
            forms.append(cols[1])
            heads.append(int(cols[6]))
            rels.append(cols[7].split(":")[0])
    if forms and len(sents) < limit:
        sents.append((forms, heads, rels))
    return sents


def word_spans(forms):
    spans, pos = [], 0
    for w in forms:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    return " ".join(forms), spans


def token_words(text, offsets, special, spans):
    """The word of each token (character offsets, transformers'): its range without surrounding
    spaces inside one word's span; -1 for special tokens and anything else."""
    out = []
    for (s, e), sp in zip(offsets, special):
        if sp:
            out.append(-1)
            continue
        while s < e and text[s] == " ":
            s += 1
        while e > s and text[e - 1] == " ":
            e -= 1
        w = -1
        if s < e:
            for k, (a, b) in enumerate(spans):
                if a <= s and e <= b:
                    w = k
                    break
        out.append(w)
    return np.array(out)


def max_tokens(config):
    for key in ("max_position_embeddings", "n_positions"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    raise ValueError("no maximum length in the config")


def reference(model_dir, limit):
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert tok.is_fast
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    limit_tokens = max_tokens(model.config)
    out = {"sentences": 0, "skipped": 0, "arcs": 0, "unmapped_arcs": 0, "layers": L, "heads": H,
           "relations": {}}
    rels = out["relations"]
    for forms, heads, relations in read_conllu(CONLLU, limit):
        text, spans = word_spans(forms)
        enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        ids = enc["input_ids"]
        if len(ids) > limit_tokens:
            out["skipped"] += 1
            continue
        out["sentences"] += 1
        wof = token_words(text, enc["offset_mapping"], enc["special_tokens_mask"], spans)
        n, W = len(ids), len(forms)
        with torch.no_grad():
            att = model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
        A = torch.stack([a[0] for a in att]).double().numpy()  # [L][H][n][n]
        to_word = np.zeros((n, W))
        for t, w in enumerate(wof):
            if w >= 0:
                to_word[t, w] = 1.0
        pieces = to_word.sum(0)
        from_word = (to_word / np.where(pieces > 0, pieces, 1)).T  # [W][n] mean of rows
        Aw = np.einsum("wt,lhtu,uv->lhwv", from_word, A, to_word)  # [L][H][W][W]
        for i, (g, r) in enumerate(zip(heads, relations)):
            if g == 0:
                continue
            g -= 1
            if pieces[i] == 0 or pieces[g] == 0:
                out["unmapped_arcs"] += 1
                continue
            out["arcs"] += 1
            e = rels.setdefault(r, {"count": 0, "head_correct": np.zeros((L, H), int),
                                    "ambiguous": np.zeros((L, H), int), "offsets": {}})
            e["count"] += 1
            k = str(g - i)
            e["offsets"][k] = e["offsets"].get(k, 0) + 1
            row = Aw[:, :, i, :].copy()
            row[:, :, i] = -np.inf
            pred = row.argmax(-1)  # first maximum: the lowest word index
            top = row.max(-1)
            e["head_correct"] += pred == g
            # a decision within TIE_TOL: right, with another word that close; or wrong, with
            # the gold head that close. Words a causal mask hides get exactly 0 in both
            # implementations: a row whose maximum is 0 is an exact tie, decided by the index.
            near = row >= top[..., None] - TIE_TOL
            near[:, :, g] = False
            amb = np.where(pred == g, near.any(-1), row[:, :, g] >= top - TIE_TOL) & (top > 0)
            e["ambiguous"] += amb
    for e in rels.values():
        e["head_correct"] = e["head_correct"].tolist()
        e["ambiguous"] = e["ambiguous"].tolist()
    return out


def main():
    torch.manual_seed(0)
    fixtures = os.path.join(ROOT, "tests", "fixtures", "models")
    models = {"bert": (os.path.join(fixtures, "bert"), 150),
              "gpt2": (os.path.join(fixtures, "gpt2"), 150)}
    md = minilm_dir()
    if md is None:
        sys.exit("all-MiniLM-L6-v2 is not installed in this venv (bench/setup_venv.sh)")
    models["minilm"] = (md, 200)
    doc = {"transformers": transformers.__version__, "torch": torch.__version__,
           "tie_tol": TIE_TOL, "conllu": "data/ud-english-ewt/en_ewt-ud-dev.conllu", "models": {}}
    for name, (d, limit) in models.items():
        print(f"{name}: {limit} sentences", file=sys.stderr)
        ref = reference(d, limit)
        ref["max_sentences"] = limit
        doc["models"][name] = ref
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(OUT, os.path.getsize(OUT), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
