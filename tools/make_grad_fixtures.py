#!/usr/bin/env python3
"""Reference head-gate gradients for the backward pass (src/model/backward.c), by torch autograd.

For developers, not CI (needs torch + transformers, bench/.venv from bench/setup_venv.sh):

    bench/.venv/bin/python tools/make_grad_fixtures.py

For each causal fixture model in tests/fixtures/models/ (GPT-2; Llama with grouped-query
attention and tied embeddings; Llama with llama3 rope_scaling and biases; Mistral with a sliding
window; Qwen2 with q/k/v biases) and a few token sequences, a gate ξ_h = 1 per head multiplies
head h's output (its slice of the input of the attention output projection: GPT-2's c_proj,
the decoders' o_proj) through a forward pre-hook; L is the mean next-token cross-entropy of the
sequence (as transformers' loss with labels = ids), and autograd gives ∂L/∂ξ_h [L][H]. Computed in
float64 (the model converted after loading), so the reference's own rounding is far below the
tests' tolerance. Writes tests/fixtures/grad/<model>.json: {"model", "cases": [{"ids", "loss",
"grad": [[...]]}], "corpus": {"texts", "loss",
"importance"}} and the corpus tests/fixtures/grad/corpus.txt.
"""
import json
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
MODELS = ["gpt2", "llama", "llama_scaled", "mistral", "qwen2"]
LENGTHS = [2, 9, 23]
# the corpus of the `attnscope importance` test (tests/fixtures/grad/corpus.txt): lines of one
# token and empty lines are skipped, as the command skips them
CORPUS = ["the cat sat on the mat.", "hello world", "", "a b c d e f g, then the end!", "x",
          "attention heads are not all equally important; some can be pruned."]


def gate_grads(model, ids):
    cfg = model.config
    L, H = cfg.num_hidden_layers, cfg.num_attention_heads
    xi = torch.ones(L, H, dtype=torch.float64, requires_grad=True)
    hooks = []
    for l, layer in enumerate(model.model.layers if hasattr(model, "model") else model.transformer.h):
        proj = layer.self_attn.o_proj if hasattr(layer, "self_attn") else layer.attn.c_proj

        def pre(mod, args, l=l):
            x = args[0]  # [B][n][H·dh]: the heads' outputs side by side
            B, n, w = x.shape
            x = (x.view(B, n, H, w // H) * xi[l].view(1, 1, H, 1)).view(B, n, w)
            return (x,)
        hooks.append(proj.register_forward_pre_hook(pre))
    t = torch.tensor([ids])
    logits = model(input_ids=t).logits[0]  # [n][V], float64
    # transformers' own loss casts the logits to float32: the cross-entropy here stays float64
    loss = torch.nn.functional.cross_entropy(logits[:-1], t[0, 1:])
    loss.backward()
    for h in hooks:
        h.remove()
    return float(loss.detach()), xi.grad.numpy()


def main():
    torch.manual_seed(0)
    with open(os.path.join(ROOT, "grad", "corpus.txt"), "w") as f:
        f.write("\n".join(CORPUS) + "\n")
    for name in MODELS:
        d = os.path.join(ROOT, "models", name)
        model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").double().eval()
        V = model.config.vocab_size
        rng = np.random.default_rng(11)
        cases = []
        for n in LENGTHS:
            ids = [int(i) for i in rng.integers(0, V, size=n)]
            loss, g = gate_grads(model, ids)
            cases.append({"ids": ids, "loss": loss, "grad": g.tolist()})
        # the corpus: transformers' tokenizer of the fixture, texts cut to the model's maximum,
        # mean |grad| and mean loss over the lines of at least 2 tokens
        tok = AutoTokenizer.from_pretrained(d)
        imp, losses = 0, []
        for text in CORPUS:
            ids = tok(text)["input_ids"] if text.strip() else []
            ids = ids[:model.config.max_position_embeddings]  # as the command cuts long texts
            if len(ids) < 2:
                continue
            loss, g = gate_grads(model, ids)
            imp = imp + np.abs(g)
            losses.append(loss)
        corpus = {"texts": len(losses), "loss": float(np.mean(losses)),
                  "importance": (imp / len(losses)).tolist()}
        path = os.path.join(ROOT, "grad", name + ".json")
        with open(path, "w") as f:
            json.dump({"model": name, "generator": "tools/make_grad_fixtures.py",
                       "cases": cases, "corpus": corpus}, f, indent=1)
        print(path, [c["loss"] for c in cases])


if __name__ == "__main__":
    main()
