#!/usr/bin/env python3
"""Builds PEFT LoRA adapters for the tiny fixture models and PEFT's own attentions with them.

For developers, not CI: runs in bench/.venv (bash bench/setup_venv.sh installs torch,
transformers < 5 and peft):

    bench/.venv/bin/python tools/make_lora_fixtures.py

For each case it loads a model of tests/fixtures/models/ with transformers (eager attention),
wraps it with peft.get_peft_model(LoraConfig(...)), draws every lora_A and lora_B at random
with standard deviation 0.15 (PEFT starts B at zero, which would leave the model unchanged and
the test unable to fail; with 0.15 the attentions move by 0.6 to 0.95 at their largest, while
the merged and unmerged products still agree to a few 1e-6), saves the adapter with
save_pretrained into tests/fixtures/lora/<case>/ (adapter_config.json,
adapter_model.safetensors; the BERT one also as adapter_model.bin in bert_bin/) and writes
PEFT's attentions [L][H][n][n] on a few texts, computed by the unmerged PEFT model (base layer
plus the LoRA branch), as float32 .npy under tests/fixtures/lora/expected/, listed in
tests/fixtures/lora/manifest.json.
tests/python/test_lora.py compares `attnscope attention --adapter` with them.

The cases cover what the merge must get right: GPT-2's Conv1D layers (fan_in_fan_out), rsLoRA
scaling, target_modules as a regular expression, rank_pattern / alpha_pattern, and
layers_to_transform, on GPT-2, BERT, Llama (grouped-query attention) and GPT-NeoX (whose fused
query_key_value is split per head after the merge); the llama_linear adapter also goes with
llama_linear.gguf, the same weights as a GGUF file.
"""
import json
import os
import shutil

import numpy as np
import peft
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
MODELS = os.path.join(REPO, "tests", "fixtures", "models")
OUT = os.path.join(REPO, "tests", "fixtures", "lora")
TEXTS = ["the cat sat on the mat.", "a b c d e f g, then the end!"]
torch.set_num_threads(1)

CASES = [
    # GPT-2: Conv1D c_attn and both c_proj (attention and MLP); fan_in_fan_out as PEFT wants it
    dict(name="gpt2", model="gpt2", causal=True,
         config=dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True)),
    # GPT-2: a regular expression naming layer 1's c_attn and c_fc, rsLoRA scaling
    dict(name="gpt2_regex_rslora", model="gpt2", causal=True,
         config=dict(r=8, lora_alpha=6, target_modules=r".*\.h\.1\.(attn\.c_attn|mlp\.c_fc)",
                     fan_in_fan_out=True, use_rslora=True)),
    # BERT: query, value and every dense layer (the masked-LM head's too); rank and alpha
    # patterns; also saved as adapter_model.bin (bert_bin/)
    dict(name="bert", model="bert", causal=False, bin=True,
         config=dict(r=4, lora_alpha=8, target_modules=["query", "value", "dense"],
                     rank_pattern={"query": 2}, alpha_pattern={"value": 3.0})),
    # Llama: every linear layer of layer 1 only, rsLoRA
    dict(name="llama", model="llama", causal=True,
         config=dict(r=4, lora_alpha=4, use_rslora=True, layers_to_transform=[1],
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj"])),
    # Llama with linear rope scaling, one key/value head: q and k, whose rows a GGUF file
    # stores permuted (the test also loads llama_linear.gguf, the same weights, with it)
    dict(name="llama_linear", model="llama_linear", causal=True,
         config=dict(r=2, lora_alpha=4, target_modules=r"model\.layers\.\d+\.self_attn\.[qk]_proj")),
    # GPT-NeoX: the fused query_key_value and the attention output
    dict(name="gpt_neox", model="gpt_neox", causal=True,
         config=dict(r=4, lora_alpha=8, target_modules=["query_key_value", "attention.dense"])),
]


def build(case, g):
    mdir = os.path.join(MODELS, case["model"])
    cls = AutoModelForCausalLM if case["causal"] else AutoModelForMaskedLM
    model = cls.from_pretrained(mdir, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(mdir)
    pm = get_peft_model(model, LoraConfig(lora_dropout=0.0, **case["config"]))
    n = 0
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
                n += 1
    assert n > 0, case["name"]
    pm.eval()
    adir = os.path.join(OUT, case["name"])
    shutil.rmtree(adir, ignore_errors=True)
    pm.save_pretrained(adir)
    dirs = [adir]
    if case.get("bin"):  # the same adapter as PyTorch's pickle: adapter_model.bin
        dirs.append(adir + "_bin")
        shutil.rmtree(dirs[1], ignore_errors=True)
        pm.save_pretrained(dirs[1], safe_serialization=False)
    for d in dirs:
        # keep the fixture free of machine paths and of PEFT's model-card template
        cpath = os.path.join(d, "adapter_config.json")
        cfg = json.load(open(cpath))
        cfg["base_model_name_or_path"] = "tests/fixtures/models/" + case["model"]
        if isinstance(cfg["target_modules"], list):  # PEFT keeps a set: a stable order for git
            cfg["target_modules"] = sorted(cfg["target_modules"])
        json.dump(cfg, open(cpath, "w"), indent=2, sort_keys=True)
        if os.path.exists(os.path.join(d, "README.md")):
            os.remove(os.path.join(d, "README.md"))
    out = []
    for k, text in enumerate(TEXTS):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            res = pm(**enc, output_attentions=True)
        att = torch.stack([a[0] for a in res.attentions]).numpy().astype(np.float32)
        fname = f"{case['name']}_text{k}_att.npy"
        np.save(os.path.join(OUT, "expected", fname), att)
        out.append({"name": f"{case['name']}-text{k}", "model": case["model"],
                    "adapter": case["name"], "text": text, "attention": fname,
                    "ids": enc["input_ids"][0].tolist()})
    return out


def main():
    os.makedirs(os.path.join(OUT, "expected"), exist_ok=True)
    g = torch.Generator().manual_seed(4321)
    cases = []
    for case in CASES:
        cases += build(case, g)
    man = {"generator": "tools/make_lora_fixtures.py", "peft": peft.__version__,
           "torch": torch.__version__, "cases": cases}
    json.dump(man, open(os.path.join(OUT, "manifest.json"), "w"), indent=1)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
