#!/usr/bin/env python3
"""Regenerates src/text/tok_unicode_tables.h: where HuggingFace's tokenizers and utf8proc
disagree about a code point.

The tokenizers library classifies characters with Unicode tables of its own (older than the
Unicode of Debian's utf8proc for categories; newer for lower-casing), so a character added to
Unicode in the meantime is, for example, punctuation for utf8proc but not for BERT's
pre-tokenizer. attnscope asks utf8proc and then consults these exception lists, which are
measured here on every code point by running `tokenizers` itself next to utf8proc (ctypes).

Run by developers (not CI) with a venv that has `tokenizers`:
    tools/.devvenv/bin/python tools/make_unicode_tables.py
"""
import ctypes
import os

from tokenizers import __version__ as tokenizers_version
from tokenizers import normalizers, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "text", "tok_unicode_tables.h")

U = ctypes.CDLL("libutf8proc.so.2")
U.utf8proc_category.restype = ctypes.c_int
U.utf8proc_tolower.restype = ctypes.c_int32
U.utf8proc_version.restype = ctypes.c_char_p
U.utf8proc_unicode_version.restype = ctypes.c_char_p
DECOMPOSE = 1 << 3
MN, MC, ME = 6, 7, 8
P_CATS = set(range(12, 19))  # Pc Pd Ps Pe Pi Pf Po
C_CATS = {26, 27, 28, 29}  # Cc Cf Cs Co

_buf = (ctypes.c_int32 * 32)()
_bound = ctypes.c_int(0)


def nfd(c):
    n = U.utf8proc_decompose_char(c, _buf, 32, DECOMPOSE, ctypes.byref(_bound))
    return [_buf[i] for i in range(n)]


def cat(c):
    return U.utf8proc_category(c)


def main():
    bert_pre = pre_tokenizers.BertPreTokenizer()
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=False)
    bert_strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                            strip_accents=True, lowercase=False)
    strip_marks = normalizers.StripAccents()
    hf_nfd = normalizers.NFD()
    lower = normalizers.Lowercase()

    punct_flip, control_flip, marks_flip = [], [], []
    strip_map, nfd_map, lower_map = [], [], []
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    letters, numbers = [], []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        k = cat(c)
        # GPT-2's regex as tokenizers runs it (Oniguruma): is ch in \p{L}, in \p{N}?
        if len(byte_level.pre_tokenize_str("a" + ch)) == 1:
            letters.append(c)
        elif len(byte_level.pre_tokenize_str("1" + ch)) == 1:
            numbers.append(c)
        if not ch.isspace() and c not in (0x85, 0x1680, 0x1C, 0x1D, 0x1E, 0x1F):
            mine = (33 <= c <= 47 or 58 <= c <= 64 or 91 <= c <= 96 or 123 <= c <= 126 or
                    k in P_CATS)
            hf = len(bert_pre.pre_tokenize_str("a" + ch + "b")) == 3
            if mine != hf:
                punct_flip.append(c)
        mine = c not in (9, 10, 13) and k in C_CATS
        hf = clean.normalize_str("a" + ch + "b") == "ab" and c not in (0, 0xFFFD)
        if mine != hf:
            control_flip.append(c)
        if (strip_marks.normalize_str(ch) == "") != (k in (MN, MC, ME)):
            marks_flip.append(c)
        d = nfd(c)
        want = [ord(x) for x in hf_nfd.normalize_str(ch)]
        if want != d:
            nfd_map.append((c, want))
        want = [ord(x) for x in bert_strip.normalize_str(ch)]
        if want != [x for x in d if cat(x) != MN]:
            strip_map.append((c, want))
        want = [ord(x) for x in lower.normalize_str(ch)]
        mine = [0x69, 0x307] if c == 0x130 else [U.utf8proc_tolower(c)]
        if want != mine:
            lower_map.append((c, want))
    for _, v in strip_map + nfd_map + lower_map:
        assert len(v) <= 3, v

    def flips(name, xs):
        body = ",".join(f"0x{x:X}" for x in xs) or "0"
        return (f"static const uint32_t {name}[] = {{{body}}};\n"
                f"#define {name.upper()}_N {len(xs)}\n")

    def maps(name, xs):
        rows = ",".join("{0x%X,%d,{%s}}" % (c, len(v), ",".join(f"0x{x:X}" for x in v) or "0")
                        for c, v in xs) or "{0,0,{0}}"
        return (f"static const tok_cp_map {name}[] = {{{rows}}};\n"
                f"#define {name.upper()}_N {len(xs)}\n")

    def ranges(xs):
        out, i = [], 0
        while i < len(xs):
            j = i
            while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
                j += 1
            out.append((xs[i], xs[j]))
            i = j + 1
        return out

    def re_class(name, xs):
        rs = ranges(xs)
        parts = [f"\\\\x{{{a:X}}}" + (f"-\\\\x{{{b:X}}}" if b > a else "") for a, b in rs]
        lines = []
        for i in range(0, len(parts), 8):
            lines.append('    "' + "".join(parts[i:i + 8]) + '"')
        return f"#define {name} \\\n" + " \\\n".join(lines) + "\n"

    with open(OUT, "w") as f:
        f.write("/* Generated by tools/make_unicode_tables.py: code points on which HuggingFace's "
                "tokenizers\n * %s and utf8proc %s (Unicode %s) disagree. Sorted. Do not edit. */\n"
                % (tokenizers_version, U.utf8proc_version().decode(),
                   U.utf8proc_unicode_version().decode()))
        f.write("/* clang-format off */\n#ifndef ATS_TOK_UNICODE_TABLES_H\n"
                "#define ATS_TOK_UNICODE_TABLES_H\n#include <stdint.h>\n\n")
        f.write("typedef struct tok_cp_map { uint32_t cp; int n; uint32_t to[3]; } tok_cp_map;\n\n")
        f.write("/* BERT punctuation: utf8proc's answer is wrong for these */\n")
        f.write(flips("tok_punct_flip", punct_flip))
        f.write("/* BERT control characters (dropped by clean_text) */\n")
        f.write(flips("tok_control_flip", control_flip))
        f.write("/* the StripAccents normalizer's combining marks (M*) */\n")
        f.write(flips("tok_marks_flip", marks_flip))
        f.write("/* BERT's strip_accents of one character (NFD, then Mn dropped) */\n")
        f.write(maps("tok_strip_map", strip_map))
        f.write("/* NFD of one character */\n")
        f.write(maps("tok_nfd_map", nfd_map))
        f.write("/* lower case of one character */\n")
        f.write(maps("tok_lower_map", lower_map))
        f.write("/* \\p{L} and \\p{N} of GPT-2's regex as tokenizers' Oniguruma has them, as PCRE2 "
                "class ranges */\n")
        f.write(re_class("TOK_RE_LETTERS", letters))
        f.write(re_class("TOK_RE_NUMBERS", numbers))
        f.write("\n#endif\n")
    print(f"wrote {OUT}: punct {len(punct_flip)}, control {len(control_flip)}, marks "
          f"{len(marks_flip)}, strip {len(strip_map)}, nfd {len(nfd_map)}, lower {len(lower_map)}, "
          f"letters {len(letters)}, numbers {len(numbers)}")


if __name__ == "__main__":
    main()
