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
"grad": [[...]]}]}.
"""
import json
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
MODELS = ["gpt2", "llama", "llama_scaled", "mistral", "qwen2"]
LENGTHS = [2, 9, 23]


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
        path = os.path.join(ROOT, "grad", name + ".json")
        with open(path, "w") as f:
            json.dump({"model": name, "generator": "tools/make_grad_fixtures.py",
                       "cases": cases}, f, indent=1)
        print(path, [c["loss"] for c in cases])


if __name__ == "__main__":
    main()
