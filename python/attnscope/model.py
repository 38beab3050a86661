"""Models run by the C runtime: GPT-2, BERT-family and ViT checkpoints in HuggingFace layout."""
import ctypes
import os
from typing import List, Optional, Sequence

import numpy as np

from . import _lib as L


class Result:
    """One forward pass. attentions: float32 [L, H, n, n] (layers and heads 0-based, as
    transformers' outputs.attentions); hidden_states: float32 [L+1, n, d] or None; tokens: the
    token strings; ids; offsets [n, 2] (byte ranges in the text); loss (NaN without labels);
    context_vectors: float32 [L, H, n, d_head] or None, head h's output before the output
    projection (softmax(Q_h K_hᵀ/√d_head) V_h, transformers' context layer split by head).
    The arrays are views of the C library's memory, freed when the last of them goes."""

    def __init__(self, tokens, ids, offsets, attentions, hidden_states, logits, loss,
                 context_vectors=None):
        self.tokens: List[str] = tokens
        self.ids: np.ndarray = ids
        self.offsets: Optional[np.ndarray] = offsets
        self.attentions: np.ndarray = attentions
        self.hidden_states: Optional[np.ndarray] = hidden_states
        self.logits: Optional[np.ndarray] = logits
        self.loss: float = loss
        self.context_vectors: Optional[np.ndarray] = context_vectors

    def __repr__(self):
        L_, H_, n, _ = self.attentions.shape
        return f"Result({n} tokens, attentions [{L_}, {H_}, {n}, {n}])"


def _result(res, tokens, id_arr, offsets, hidden_states, logits, d_head=0):
    """A Result viewing the C arrays of res, which are freed when the last view goes."""
    owner = L._Owner(L.ats_forward_result_free, ctypes.byref(res))
    owner.res = res
    Ln, Hn, n, d = res.n_layers, res.n_heads, res.n_tokens, res.d_model
    att = L.view(res.attention, (Ln, Hn, n, n), ctypes.c_float, owner)
    hid = L.view(res.hidden, (Ln + 1, n, d), ctypes.c_float, owner) if hidden_states else None
    lg = L.view(res.logits, (n, res.vocab_size), ctypes.c_float, owner) if logits else None
    ctx = None
    if res.context:  # [L][n][H·dh] → [L, H, n, dh]
        ctx = L.view(res.context, (Ln, n, Hn, d_head), ctypes.c_float, owner).transpose(0, 2, 1, 3)
    if tokens is not None and n < len(tokens):
        tokens, id_arr, offsets = tokens[:n], id_arr[:n], offsets[:n]
    return Result(tokens, id_arr, offsets, att, hid, lg, res.loss, ctx)


class Model:
    """A loaded model and its tokenizer. Use Model.load(path_or_name)."""

    def __init__(self, session, info):
        self._session = session  # ats_session: the model and its tokenizer
        self._handle = L.ats_session_model(session)
        self._tok = L.ats_session_tokenizer(session)
        self.info = info

    @classmethod
    def load(cls, path_or_name: str, adapter: Optional[str] = None) -> "Model":
        """Loads a model directory in HuggingFace layout, or a name from the HuggingFace cache.
        adapter: a PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors)
        merged into the weights at load, as ats_model_load_adapted (model.h) describes."""
        s, err = ctypes.c_void_p(), L.Error()
        ad = None if adapter is None else os.fsencode(adapter)
        L.check(L.ats_session_open_adapted(os.fsencode(path_or_name), ad, ctypes.byref(s),
                                           ctypes.byref(err)), err)
        i = L.ats_model_info_get(L.ats_session_model(s)).contents
        info = {
            "model_type": i.model_type.decode(), "dir": i.dir.decode(), "n_layers": i.n_layers,
            "n_heads": i.n_heads, "d_model": i.d_model, "d_head": i.d_head, "vocab_size": i.vocab_size,
            "max_positions": i.max_positions, "causal": bool(i.causal),
            "has_lm_head": bool(i.has_lm_head), "vision": i.arch == L._constant("ATS_ARCH_VIT"),
        }
        return cls(s, info)

    def close(self):
        if getattr(self, "_backward", None):
            L.ats_backward_close(self._backward)
            self._backward = None
        if self._session:
            L.ats_session_close(self._session)
            self._session = self._handle = self._tok = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        i = self.info
        return f"Model({i['model_type']}, {i['n_layers']} layers x {i['n_heads']} heads, d={i['d_model']})"

    def tokenize(self, text: str, add_special: bool = True) -> dict:
        """{"ids", "tokens", "offsets" (byte ranges), "special", "word_ids"} of a text."""
        if not self._tok:
            raise L.AttnscopeError(4, "a vision model has no tokenizer")
        raw = text.encode("utf-8")
        enc, err = L.Encoding(), L.Error()
        L.check(L.ats_tokenizer_encode(self._tok, raw, len(raw), int(add_special), ctypes.byref(enc),
                                       ctypes.byref(err)), err)
        try:
            n = enc.count
            return {
                "ids": np.ctypeslib.as_array(enc.ids, shape=(n,)).copy() if n else np.zeros(0, np.int32),
                "tokens": [enc.tokens[i].decode("utf-8", "replace") for i in range(n)],
                "offsets": (np.ctypeslib.as_array(enc.offsets, shape=(2 * n,)).reshape(n, 2).copy()
                            if n else np.zeros((0, 2), np.uintp)),
                "special": [bool(enc.special[i]) for i in range(n)],
                "word_ids": [int(enc.word_ids[i]) for i in range(n)] if enc.word_ids else None,
            }
        finally:
            L.ats_encoding_free(ctypes.byref(enc))

    def run(self, text: Optional[str] = None, image: Optional[str] = None,
            ids: Optional[Sequence[int]] = None, hidden_states: bool = False,
            logits: bool = False, labels: Optional[Sequence[int]] = None,
            head_mask: Optional[np.ndarray] = None, n_threads: int = 0,
            truncate: bool = False, n_layers: int = 0,
            image_size: Optional[Sequence[int]] = None, positions: bool = True,
            context_vectors: bool = False) -> Result:
        """Runs the model on a text (tokenized with its tokenizer, special tokens added), on
        explicit ids, or on an image file (ViT). head_mask [L, H]: 0 silences a head (as
        transformers' head_mask); labels give the language-model loss. n_layers > 0 runs only
        the first n_layers layers (attentions [n_layers, H, n, n]; no hidden states or
        logits then), for a study of early heads. image_size (height, width): a ViT sees the
        image at that size, its position embeddings interpolated (transformers'
        interpolate_pos_encoding=True). positions=False leaves the position embeddings out (as
        if they were zero), e.g. to see permutation equivariance. context_vectors=True keeps
        each head's output before the output projection (Result.context_vectors)."""
        if sum(x is not None for x in (text, image, ids)) != 1:
            raise ValueError("give exactly one of text, image, ids")
        opt = L.ForwardOptions()
        L.ats_forward_options_init(ctypes.byref(opt))
        opt.capture = (L.CAPTURE_ATTENTION | (L.CAPTURE_HIDDEN if hidden_states else 0)
                       | (L.CAPTURE_LOGITS if logits else 0)
                       | (L.CAPTURE_CONTEXT if context_vectors else 0))
        opt.n_threads, opt.truncate, opt.n_layers = int(n_threads), int(truncate), int(n_layers)
        opt.no_positions = int(not positions)
        if image_size is not None:
            opt.image_height, opt.image_width = (int(x) for x in image_size)
        keep = []
        if head_mask is not None:
            hm = np.ascontiguousarray(head_mask, dtype=np.float32)
            if hm.shape != (self.info["n_layers"], self.info["n_heads"]):
                raise L.AttnscopeError(3, f"head_mask must be [{self.info['n_layers']}, {self.info['n_heads']}]")
            keep.append(hm)
            opt.head_mask = hm.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        res, err = L.ForwardResult(), L.Error()
        tokens, offsets = None, None
        if image is not None:
            L.check(L.ats_model_forward_image(self._handle, os.fsencode(image), ctypes.byref(opt),
                                              ctypes.byref(res), ctypes.byref(err)), err)
            id_arr = np.zeros(0, np.int32)
        else:
            if text is not None:
                enc = self.tokenize(text)
                id_arr, tokens, offsets = enc["ids"], enc["tokens"], enc["offsets"]
            else:
                id_arr = np.ascontiguousarray(ids, dtype=np.int32)
            inp = L.ModelInput()
            inp.ids = id_arr.ctypes.data_as(L.c_int32_p)
            inp.n = id_arr.shape[0]
            if labels is not None:
                lab = np.ascontiguousarray(labels, dtype=np.int32)
                keep.append(lab)
                inp.labels = lab.ctypes.data_as(L.c_int32_p)
            L.check(L.ats_model_forward(self._handle, ctypes.byref(inp), ctypes.byref(opt),
                                        ctypes.byref(res), ctypes.byref(err)), err)
        return _result(res, tokens, id_arr, offsets, hidden_states, logits, self.info["d_head"])

    def head_gradients(self, text: Optional[str] = None, ids: Optional[Sequence[int]] = None,
                       n_threads: int = 0):
        """(loss, grad [L, H]): the mean next-token cross-entropy of a text (or of explicit ids)
        and its gradient with respect to a gate multiplying each head's output, at 1, from one
        forward and one backward pass (causal LMs: GPT-2, Llama, Mistral, Qwen2). |grad|
        averaged over texts is Michel et al.'s head importance (see head_importance)."""
        if (text is None) == (ids is None):
            raise ValueError("give exactly one of text, ids")
        id_arr = (self.tokenize(text)["ids"] if text is not None
                  else np.ascontiguousarray(ids, dtype=np.int32))
        id_arr = np.ascontiguousarray(id_arr, dtype=np.int32)
        if not getattr(self, "_backward", None):
            b, err = ctypes.c_void_p(), L.Error()
            L.check(L.ats_backward_open(self._handle, ctypes.byref(b), ctypes.byref(err)), err)
            self._backward = b
        inp = L.ModelInput()
        inp.ids = id_arr.ctypes.data_as(L.c_int32_p)
        inp.n = id_arr.shape[0]
        grad = np.zeros((self.info["n_layers"], self.info["n_heads"]), np.float32)
        loss, err = ctypes.c_double(), L.Error()
        L.check(L.ats_backward_run(self._backward, ctypes.byref(inp), int(n_threads),
                                   grad.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                   ctypes.byref(loss), ctypes.byref(err)), err)
        return loss.value, grad

    def run_batch(self, texts: Sequence[str], hidden_states: bool = False, n_threads: int = 0,
                  truncate: bool = False, n_layers: int = 0) -> List[Result]:
        """Runs several texts in one pass: the rows of all texts go through each weight matrix
        together (read once), attention runs per text, and each Result equals run(text) bit for
        bit on a CPU with AVX-512 (elsewhere the texts run one after another)."""
        texts = list(texts)
        if not texts:
            return []
        opt = L.ForwardOptions()
        L.ats_forward_options_init(ctypes.byref(opt))
        opt.capture = L.CAPTURE_ATTENTION | (L.CAPTURE_HIDDEN if hidden_states else 0)
        opt.n_threads, opt.truncate, opt.n_layers = int(n_threads), int(truncate), int(n_layers)
        encs = [self.tokenize(t) for t in texts]
        inputs = (L.ModelInput * len(texts))()
        for k, enc in enumerate(encs):
            inputs[k].ids = enc["ids"].ctypes.data_as(L.c_int32_p)
            inputs[k].n = enc["ids"].shape[0]
        results, err = (L.ForwardResult * len(texts))(), L.Error()
        L.check(L.ats_model_forward_batch(self._handle, len(texts), inputs, ctypes.byref(opt),
                                          results, ctypes.byref(err)), err)
        return [_result(results[k], e["tokens"], e["ids"], e["offsets"], hidden_states, False)
                for k, e in enumerate(encs)]
