"""Strings the tokenizer must handle exactly as transformers does (>= 500 of them).

English sentences come from the project corpus; the edge cases below are written for the
rules of BERT's BasicTokenizer (lowercasing, NFD accent stripping, CJK splitting,
punctuation splitting, control/format characters, whitespace, words over 100 characters),
and variants of the sentences exercise case and accents. The Java tokenizer of the
android_demo issue reuses these.
"""

from __future__ import annotations

from pocketbert.models.vocab import corpus_lines

EDGE_CASES = [
    "",
    " ",
    "   \t  \n ",
    "\u00a0\u2003\u3000",
    "\n\n\n",
    "[MASK]",
    "The capital of France is [MASK].",
    "[CLS] already [SEP] has [PAD] special [UNK] tokens [MASK]",
    "[mask] in lower case is not special",
    "[MASK][MASK] two masks [MASK]",
    "Paris is the [MASK] of [MASK].",
    "Héllo wörld",
    "Crème brûlée, façade, naïve, coöperate, résumé",
    "ÀÁÂÃÄÅ àáâãäå ÈÉÊË èéêë ÌÍÎÏ ìíîï ÒÓÔÕÖ òóôõö ÙÚÛÜ ùúûü Ññ Çç",
    "Ångström Øresund Æsir Œuvre ß Straße",
    "Dvořák Škoda Łódź Kraków Zürich Göteborg",
    "e\u0301 (combining acute) and \u00e9 (precomposed)",
    "a\u0308\u0304 stacked marks",
    "İstanbul ıi",
    "ΑΘΗΝΑ Αθήνα ΟΔΟΣ οδός",
    "Москва — столица России.",
    "Ελληνικά και Русский текст вместе",
    "你好，世界！",
    "我爱北京天安门。",
    "中文English混合text",
    "日本語のテキストとカタカナ",
    "ひらがなだけ",
    "한국어 텍스트입니다",
    "漢字かな交じり文",
    "𠀀𠀁 rare CJK extension B",
    "Emoji: 😀😃😄 🙂 👍🏽 ❤️ 🇫🇷",
    "family 👨‍👩‍👧‍👦 zero width joiner",
    "🙂🙂🙂🙂",
    "text🙂glued",
    "control\x00chars\x01here\x07",
    "tab\tseparated\tvalues",
    "carriage\rreturn",
    "line\nbreaks\nhere",
    "zero\u200bwidth\u200cspace\u200djoiner",
    "soft\u00adhyphen",
    "bidi \u202egnirts\u202c mark",
    "replacement \ufffd char",
    "byte order mark \ufeff inside",
    "a" * 99,
    "a" * 100,
    "a" * 101,
    "b" * 250,
    "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "x" * 50 + " " + "y" * 150 + " end",
    "Lorem ipsum " * 40,
    "https://www.example.com/path?query=1&other=two#fragment",
    "user.name+tag@example.co.uk",
    "C:\\Program Files\\pocketbert\\bin",
    "def f(x): return x ** 2  # comment",
    "if (a < b && c >= d) { return -1; }",
    "<html><body>Hello</body></html>",
    "$100.00 €50 £20 ¥1000 ₹500",
    "3.14159 2,718 1e-10 -42 +7 50%",
    "1/2 ½ ¾ ² ³ ∞ ≠ ≤ ≥ ± × ÷",
    "∀x∈ℝ: x² ≥ 0",
    "“Curly quotes” and ‘single ones’",
    "«guillemets» „German quotes“",
    "em—dash en–dash hyphen-minus",
    "ellipsis… and … spaced",
    "don't can't won't it's y'all'd've",
    "rock'n'roll O'Neill",
    "U.S.A. e.g. i.e. etc.",
    "well-known state-of-the-art twenty-one",
    "!!!???...,,,;;;:::",
    "@#$%^&*()_+-=[]{}|;':\",./<>?`~",
    "(parenthetical (nested) remark)",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Tiếng Việt có dấu",
    "Ⅻ Roman numeral twelve",
    "ﬁ ﬂ ligatures",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ",
    "MiXeD CaSe WoRdS",
    "ALL CAPS SENTENCE ABOUT PARIS",
    "    leading and trailing spaces    ",
    "multiple     internal      spaces",
    "a",
    "I",
    ".",
    "?",
    "ok",
    "42",
    "The capital of France is Paris.",
    "the capital of france is paris",
    "THE CAPITAL OF FRANCE IS PARIS",
    "MobileBERT runs in 62 ms on a Pixel 4.",
    "SqueezeBERT is 4.3x faster than BERT-base on a Pixel 3.",
    "DistilBERT is 60% faster and keeps 97% of BERT's accuracy.",
]

# Question/context and sentence pairs (the second text gets token type 1).
EDGE_PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris, and the capital of Italy is Rome."),
    ("Who won two Nobel prizes?", "Marie Curie won two Nobel prizes, one in physics and one in chemistry."),
    ("", "An empty first text."),
    ("An empty second text.", ""),
    ("", ""),
    ("   ", "whitespace first"),
    ("你好", "世界"),
    ("Émile", "Zoë"),
    ("🙂", "😀"),
    ("a" * 120, "long word first"),
    ("[MASK] is here", "and [MASK] there"),
    ("x " * 100, "y " * 100),
    ("short", "long " * 80),
    ("long " * 80, "short"),
]


def sentence_variants(lines: list[str]) -> list[str]:
    """Upper-case, title-case and accented versions of sentences: same words, other code points."""
    accents = str.maketrans({"a": "á", "e": "è", "o": "ö", "u": "ü", "c": "ç", "n": "ñ"})
    out = []
    for i, line in enumerate(lines):
        kind = i % 3
        out.append(line.upper() if kind == 0 else line.title() if kind == 1 else line.translate(accents))
    return out


def single_texts() -> list[str]:
    lines = corpus_lines()
    return lines + EDGE_CASES + sentence_variants(lines[:150])


def pair_texts() -> list[tuple[str, str]]:
    lines = corpus_lines()
    return EDGE_PAIRS + [(lines[i], lines[i + 1]) for i in range(0, 120, 2)]


# Blocks whose characters are assigned since Unicode 6 or earlier, so the JDK's and
# Rust's Unicode tables agree on their categories (newer code points are "unassigned" in
# older tables, and tokenizers drops unassigned characters as control characters).
STABLE_BLOCKS = [
    (0x20, 0x7E), (0xA0, 0xFF), (0x100, 0x17F), (0x300, 0x36F), (0x391, 0x3C9), (0x410, 0x44F),
    (0x2010, 0x2027), (0x4E00, 0x4FFF), (0x3041, 0x3096), (0xAC00, 0xAD00), (0x1F600, 0x1F64F),
    (0x00, 0x1F), (0x2028, 0x2029), (0x3000, 0x3000), (0x200B, 0x200F),
]


def random_texts(count: int, seed: int = 0) -> list[str]:
    """Deterministic random strings over STABLE_BLOCKS, with words, spaces and the odd [MASK]."""
    import random

    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.05:
                parts.append("[MASK]")
                continue
            low, high = rng.choice(STABLE_BLOCKS)
            parts.append("".join(chr(rng.randint(low, high)) for _ in range(rng.randint(1, 8))))
        texts.append(rng.choice([" ", "", "  "]).join(parts))
    return texts
