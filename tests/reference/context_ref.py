"""transformers' hidden states and each head's context vector (the input of the attention output
projection: softmax(Q Kᵀ/√d_head) V for every head side by side) for token-id sequences, as the
reference of tests/python/test_context.py. Runs where torch and transformers are (bench/.venv):

    python context_ref.py MODEL_DIR IDS.json OUT.npz

IDS.json: [[id, ...], ...]; OUT.npz: hidden_K [L+1][n][d] and context_K [L][n][H·dh] for
sequence K."""
import json
import sys

import numpy as np
import torch
import transformers


def output_projections(model):
    """The attention output projection of every layer (BERT, GPT-2, the Llama family)."""
    names = ("attention.output.dense", "attn.c_proj", "self_attn.o_proj", "attention.dense")
    mods = [m for n, m in model.named_modules() if n.endswith(names)]
    assert len(mods) == model.config.num_hidden_layers, [n for n, _ in model.named_modules()]
    return mods


def main(model_dir, ids_path, out_path):
    model = transformers.AutoModel.from_pretrained(model_dir, attn_implementation="eager",
                                                   dtype=torch.float32).eval()
    captured = []
    for m in output_projections(model):
        m.register_forward_pre_hook(lambda mod, args: captured.append(args[0][0].detach().numpy()))
    arrays = {"n_heads": np.array(model.config.num_attention_heads)}
    for k, ids in enumerate(json.load(open(ids_path))):
        captured.clear()
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_hidden_states=True)
        arrays[f"hidden_{k}"] = np.stack([h[0].numpy() for h in out.hidden_states])
        arrays[f"context_{k}"] = np.stack(captured)
    np.savez(out_path, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:4])
