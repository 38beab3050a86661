#!/usr/bin/env python3
"""Writes tests/fixtures/models/llama_gguf/: a tiny random Llama as a GGUF file, written with
the `gguf` package as llama.cpp's converter lays it out, and transformers' attentions of it.

For developers, not CI (the fixture is committed): needs torch, transformers, gguf and
accelerate (bench/setup_venv.sh):

    bench/.venv/bin/python tools/make_gguf_model_fixtures.py        # everything
    bench/.venv/bin/python tools/make_gguf_model_fixtures.py spm    # llama_spm/ alone

The model: 2 layers, d = 64, 4 query heads and 2 key/value heads of 16, SwiGLU width 96, a
separate output matrix (output.weight, not tied), rope_theta 10000. Tensors are stored in
several types (F32, F16, Q8_0, Q4_0, Q5_1, Q4_1) and q / k with llama.cpp's row permutation
(convert_hf_to_gguf.py's LlamaModel.permute), which the loader must undo. No tokenizer: the
tests pass ids. transformers loads the file itself (AutoModelForCausalLM.from_pretrained(dir,
gguf_file=...), eager attention, float32) and records, for a few id sequences, the attentions
[L][H][n][n] and the loss (labels = ids) into expected.npz / expected.json.

Also llama_linear.gguf: the llama_linear fixture converted (see build_linear); llama3.gguf:
llama3 rope scaling as a rope_freqs.weight tensor (see build_llama3); and
tests/fixtures/models/llama_spm/: a tiny Llama whose tokenizer is SentencePiece-style (see
build_spm; needs the sentencepiece package too).
"""
import json
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

import gguf
from gguf import GGMLQuantizationType as T

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "models", "llama_gguf")
NAME = "tiny-llama.gguf"
IDS = [[1, 17, 42, 99, 7, 250, 3, 61], [5], [200, 201, 202, 13, 13, 13, 88, 0, 71, 150, 9, 33]]


def permute(w, n_head):
    """llama.cpp's row order for q / k: each head's [2][dh/2] rows as [dh/2][2]"""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2) \
            .reshape(w.shape)


def randomize(model, seed, std):
    """Random weights (matrices N(0, std²), vectors 1 + N(0, 0.04)) from seed; the float32
    state dict"""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std if p.ndim >= 2 else
                    1.0 + 0.2 * torch.randn(p.shape, generator=g))
    return {k: v.numpy().astype(np.float32) for k, v in model.state_dict().items()}


def add_llama_tensors(w, sd, L, H, Hkv, embed):
    """A float32 HuggingFace Llama state dict's tensors as llama.cpp names and lays them out
    (q / k permuted), the token embeddings given as embed; no output.weight (tied)"""
    w.add_tensor("token_embd.weight", embed)
    for l in range(L):
        p = f"model.layers.{l}."
        w.add_tensor(f"blk.{l}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(f"blk.{l}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], H))
        w.add_tensor(f"blk.{l}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], Hkv))
        w.add_tensor(f"blk.{l}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(f"blk.{l}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{l}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{l}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{l}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{l}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])


def main():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    sd = randomize(model, 1234, 0.25)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, NAME)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny llama")
    w.add_block_count(2)
    w.add_context_length(64)
    w.add_embedding_length(64)
    w.add_feed_forward_length(96)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(16)
    w.add_vocab_size(256)

    def put(name, arr, qtype):
        if qtype == T.F32:
            w.add_tensor(name, arr.astype(np.float32))
        elif qtype == T.F16:
            w.add_tensor(name, arr.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)

    put("token_embd.weight", sd["model.embed_tokens.weight"], T.Q8_0)
    for l in range(2):
        p = f"model.layers.{l}."
        put(f"blk.{l}.attn_norm.weight", sd[p + "input_layernorm.weight"], T.F32)
        put(f"blk.{l}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], 4), T.Q8_0)
        put(f"blk.{l}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], 2), T.F16)
        put(f"blk.{l}.attn_v.weight", sd[p + "self_attn.v_proj.weight"], T.Q4_0)
        put(f"blk.{l}.attn_output.weight", sd[p + "self_attn.o_proj.weight"], T.Q5_1)
        put(f"blk.{l}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"], T.F32)
        put(f"blk.{l}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"], T.Q4_1)
        put(f"blk.{l}.ffn_up.weight", sd[p + "mlp.up_proj.weight"], T.Q8_0)
        put(f"blk.{l}.ffn_down.weight", sd[p + "mlp.down_proj.weight"], T.F16)
    put("output_norm.weight", sd["model.norm.weight"], T.F32)
    put("output.weight", sd["lm_head.weight"], T.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    ref = AutoModelForCausalLM.from_pretrained(OUT, gguf_file=NAME, attn_implementation="eager",
                                               dtype=torch.float32)
    ref.eval()
    arrays, cases = {}, []
    for k, ids in enumerate(IDS):
        x = torch.tensor([ids])
        with torch.no_grad():
            o = ref(x, labels=x, output_attentions=True)
        arrays[f"att{k}"] = torch.stack(o.attentions, 0)[:, 0].numpy().astype(np.float32)
        cases.append({"ids": ids, "loss": float(o.loss) if len(ids) > 1 else None})
    np.savez_compressed(os.path.join(OUT, "expected.npz"), **arrays)
    with open(os.path.join(OUT, "expected.json"), "w") as fp:
        json.dump({"file": NAME, "cases": cases}, fp, indent=1)


def build_linear():
    """llama_linear/ (HuggingFace layout: linear rope_scaling factor 2, one key/value head,
    head_dim 16 with hidden size 48, bfloat16) as llama_linear.gguf, float32 tensors and the
    scaling as llama.cpp's converter writes it ({arch}.rope.scaling.type / .factor,
    attention.key_length). transformers' GGUF loader ignores those keys, so the reference is
    llama_linear/expected/, transformers on the safetensors checkpoint."""
    from safetensors.torch import load_file
    src = os.path.join(OUT, "..", "llama_linear")
    cfg = json.load(open(os.path.join(src, "config.json")))
    sd = {k: v.float().numpy() for k, v in load_file(os.path.join(src, "model.safetensors")).items()}
    H, Hkv, L = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    w = gguf.GGUFWriter(os.path.join(OUT, "llama_linear.gguf"), "llama")
    w.add_name("llama_linear")
    w.add_block_count(L)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(Hkv)
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    w.add_rope_scaling_factor(cfg["rope_scaling"]["factor"])
    w.add_vocab_size(cfg["vocab_size"])
    add_llama_tensors(w, sd, L, H, Hkv, sd["model.embed_tokens.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def build_llama3():
    """A tiny Llama with llama3 rope_scaling as llama3.gguf, the scaling as llama.cpp's
    converter stores it: a rope_freqs.weight tensor of per-frequency divisors (1 for short
    wavelengths, the factor for long ones, blended between). transformers' GGUF loader ignores
    that tensor, so the reference (llama3.npz: attentions of IDS, losses in expected.json) is
    transformers on the HuggingFace model itself."""
    import math
    torch.manual_seed(0)
    rs = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16}
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                      rope_scaling=rs, attn_implementation="eager")
    model = LlamaForCausalLM(cfg)
    sd = randomize(model, 99, 0.25)
    model.eval()
    w = gguf.GGUFWriter(os.path.join(OUT, "llama3.gguf"), "llama")
    w.add_name("tiny llama3")
    w.add_block_count(2)
    w.add_context_length(64)
    w.add_embedding_length(64)
    w.add_feed_forward_length(96)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(16)
    w.add_vocab_size(256)
    # convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors for rope_type llama3
    dim, base = 16, 10000.0
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    lo_wl, hi_wl = 16 / 1.0, 16 / 4.0
    factors = []
    for f in freqs.tolist():
        wl = 2 * math.pi / f
        if wl < hi_wl:
            factors.append(1.0)
        elif wl > lo_wl:
            factors.append(8.0)
        else:
            smooth = (16 / wl - 1.0) / (4.0 - 1.0)
            factors.append(1 / ((1 - smooth) / 8.0 + smooth))
    w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
    add_llama_tensors(w, sd, 2, 4, 2, sd["model.embed_tokens.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    arrays, losses = {}, []
    ids_long = [(7 * i + 3) % 256 for i in range(40)]  # past original_max_position_embeddings
    for k, ids in enumerate(IDS + [ids_long]):
        x = torch.tensor([ids])
        with torch.no_grad():
            o = model(x, labels=x, output_attentions=True)
        arrays[f"att{k}"] = torch.stack(o.attentions, 0)[:, 0].numpy().astype(np.float32)
        losses.append({"ids": ids, "loss": float(o.loss) if len(ids) > 1 else None})
    np.savez_compressed(os.path.join(OUT, "llama3.npz"), **arrays)
    ref = json.load(open(os.path.join(OUT, "expected.json")))
    ref["llama3"] = {"file": "llama3.gguf", "cases": losses}
    with open(os.path.join(OUT, "expected.json"), "w") as fp:
        json.dump(ref, fp, indent=1)


SPM_OUT = os.path.join(HERE, "..", "tests", "fixtures", "models", "llama_spm")


def spm_vocabulary():
    """A SentencePiece BPE model with byte fallback trained here (sentencepiece, one thread) on
    600 lines of data/corpus/english.txt and the multilingual tests/fixtures/tokenizer/
    tiny_texts.txt, 700 pieces, character coverage 0.98 (rarer characters fall back to bytes);
    as llama.cpp's converter stores it (convert_hf_to_gguf.py, _create_vocab_sentencepiece):
    pieces, scores, token types (1 normal, 2 unknown, 3 control, 6 byte)."""
    import io
    import sentencepiece as spm
    root = os.path.join(HERE, "..")
    lines = open(os.path.join(root, "data", "corpus", "english.txt"), encoding="utf-8") \
        .read().splitlines()[:600]
    lines += open(os.path.join(root, "tests", "fixtures", "tokenizer", "tiny_texts.txt"),
                  encoding="utf-8").read().splitlines()
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, vocab_size=700, model_type="bpe",
        byte_fallback=True, character_coverage=0.98, num_threads=1, split_digits=True,
        allow_whitespace_only_pieces=True, remove_extra_whitespaces=False, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    toks, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        toks.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else
                     6 if sp.is_byte(i) else 5 if sp.is_unused(i) else 1)
    return toks, scores, types


def spm_writer(path, toks, scores, types, prefix=None, add_bos=True, add_eos=False):
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny llama spm")
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    if types is not None:
        w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(add_bos)
    w.add_add_eos_token(add_eos)
    if prefix is not None:
        w.add_add_space_prefix(prefix)
    return w


def bytelevel_fallback(path):
    """A byte-level BPE vocabulary (tokenizer.ggml.model "gpt2") that lacks the byte-level
    characters of the bytes 0x0A, 0xC3, 0xE3, 0xF0 and 0x81 but has <0xXX> tokens: transformers'
    BPE (byte_fallback) then takes the <0xXX> tokens of the missing character's own UTF-8 (e.g.
    'Ã' = C3 83), which attnscope must do too. A few merges, <|bos|> as BOS and control token."""
    from make_fixtures import bytes_to_unicode
    b2u = bytes_to_unicode()
    missing = {0x0A, 0xC3, 0xE3, 0xF0, 0x81}
    toks = ["<|bos|>", "<unk>"] + [b2u[b] for b in range(256) if b not in missing]
    toks += [f"<0x{b:02X}>" for b in range(256)]
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s"]
    toks += [m.replace(" ", "") for m in merges]
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_token_list(toks)
    w.add_token_types([3, 2] + [1] * (len(toks) - 2))
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_unk_token_id(1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


SPM_TEXTS = [
    "The cat sat on the mat.",
    "Crème brûlée, s'il vous plaît — 東京は日本の首都です。",
    "<s> and </s> in the text, <unk> too",
    "a  b   c\t\td 🍕\t end",
]


def build_spm():
    """llama_spm/: llama-spm.gguf, a tiny random Llama (2 layers, d = 32, 4 query heads and 2
    key/value heads of 8, tied embeddings, 1024 positions: long inputs) with the SentencePiece vocabulary of
    spm_vocabulary() and no merges (transformers builds them from the scores), and
    tokenizer-only variants: spm-noprefix.gguf (add_space_prefix false; add_bos_token false and
    add_eos_token true, which transformers ignores), spm-notypes.gguf (no token types: only the
    unknown and BOS tokens are special), spm-ties.gguf (scores rounded to multiples of 16, so
    that many merges tie; token 600 a copy of token 400; the byte tokens of 0xE3, 0x81 and 0x9F
    renamed, so that some characters become the unknown token), bpe-fallback.gguf (a byte-level
    vocabulary that needs byte fallback: bytelevel_fallback). transformers' tokenizer of each
    file (AutoTokenizer.from_pretrained(dir, gguf_file=name)) gives the reference ids of the
    lines of tests/fixtures/tokenizer (sentences.txt, 200 lines of gpt2_corpus.txt, and for
    llama-spm.gguf the 2780 single-character lines of unicode_lines.txt) in tokens.json; its
    model the attentions and loss of SPM_TEXTS (expected.npz, expected.json)."""
    from transformers import AutoTokenizer
    from make_smollm2_reference import lines_of
    toks, scores, types = spm_vocabulary()
    V = len(toks)
    os.makedirs(SPM_OUT, exist_ok=True)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    sd = randomize(model, 77, 0.3)
    w = spm_writer(os.path.join(SPM_OUT, "llama-spm.gguf"), toks, scores, types)
    w.add_block_count(2)
    w.add_context_length(1024)
    w.add_embedding_length(32)
    w.add_feed_forward_length(48)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(8)
    w.add_vocab_size(V)
    add_llama_tensors(w, sd, 2, 4, 2, sd["model.embed_tokens.weight"].astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    def tokenizer_only(name, *args, **kw):
        w = spm_writer(os.path.join(SPM_OUT, name), *args, **kw)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    tokenizer_only("spm-noprefix.gguf", toks, scores, types, prefix=False, add_bos=False,
                   add_eos=True)
    tokenizer_only("spm-notypes.gguf", toks, scores, None)
    tt = list(toks)
    tt[600] = tt[400]
    for b in (0xE3, 0x81, 0x9F):
        tt[3 + b] = f"<0x{b:02x}>"
    tokenizer_only("spm-ties.gguf", tt, [16.0 * round(x / 16.0) for x in scores], types)
    bytelevel_fallback(os.path.join(SPM_OUT, "bpe-fallback.gguf"))

    fix = os.path.join(HERE, "..", "tests", "fixtures", "tokenizer")
    lines = lines_of(os.path.join(fix, "sentences.txt"))
    lines += lines_of(os.path.join(fix, "gpt2_corpus.txt"))[::5][:200] + SPM_TEXTS
    uni = lines_of(os.path.join(fix, "unicode_lines.txt"))
    ids = {}
    for name in ["llama-spm.gguf", "spm-noprefix.gguf", "spm-notypes.gguf", "spm-ties.gguf",
                 "bpe-fallback.gguf"]:
        tok = AutoTokenizer.from_pretrained(SPM_OUT, gguf_file=name)
        group = lines + uni if name == "llama-spm.gguf" else lines
        ids[name] = [tok(t).input_ids for t in group]
    with open(os.path.join(SPM_OUT, "tokens.json"), "w", encoding="utf-8") as fp:
        json.dump({"note": "transformers' AutoTokenizer.from_pretrained(dir, gguf_file=name) "
                           f"(transformers {__import__('transformers').__version__}): input_ids "
                           "of lines (every file) and of unicode_lines (llama-spm.gguf, after "
                           "those of lines)",
                   "lines": lines, "unicode_lines": uni, "ids": ids}, fp, ensure_ascii=False,
                  separators=(",", ":"))

    tok = AutoTokenizer.from_pretrained(SPM_OUT, gguf_file="llama-spm.gguf")
    ref = AutoModelForCausalLM.from_pretrained(SPM_OUT, gguf_file="llama-spm.gguf",
                                               attn_implementation="eager", dtype=torch.float32)
    ref.eval()
    arrays, cases = {}, []
    for k, text in enumerate(SPM_TEXTS):
        x = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            o = ref(x, labels=x, output_attentions=True)
        arrays[f"att{k}"] = torch.stack(o.attentions, 0)[:, 0].numpy().astype(np.float32)
        cases.append({"text": text, "ids": x[0].tolist(), "loss": float(o.loss)})
    np.savez_compressed(os.path.join(SPM_OUT, "expected.npz"), **arrays)
    with open(os.path.join(SPM_OUT, "expected.json"), "w", encoding="utf-8") as fp:
        json.dump({"file": "llama-spm.gguf", "cases": cases}, fp, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["spm"]:  # the SentencePiece fixture alone
        build_spm()
        sys.exit(0)
    main()
    build_linear()
    build_llama3()
    build_spm()
