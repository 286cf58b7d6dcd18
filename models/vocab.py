"""A WordPiece vocabulary for created checkpoints, trained here on the project's own corpus.

The real 30522-token uncased vocabulary cannot be downloaded where pocketbert is built, so
``pocketbert create`` trains one with ``tokenizers``' WordPiece trainer on
``data/corpus_en.txt`` (English the project wrote itself) and lays it out like BERT's:
[PAD]=0, [unused0..98]=1..99, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, then the
learned pieces, then [unusedN] up to the architecture's vocab_size.

The trainer breaks ties between equally frequent merges in hash-map order, so two runs on
the same corpus learn slightly different sets (2639-2644 pieces measured). A checkpoint
must be reproducible, so one run is frozen in ``data/wordpieces_en.txt`` (trainer order:
alphabet first, then merges); ``python -m pocketbert.models.vocab`` retrains it after the
corpus changes, and a test checks the file still is what the trainer learns from the corpus.
"""

from __future__ import annotations

import string
from importlib import resources

from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordPiece
from tokenizers.trainers import WordPieceTrainer

from pocketbert.errors import PocketbertError

CORPUS_FILE = "corpus_en.txt"
PIECES_FILE = "wordpieces_en.txt"
HELDOUT_FILE = "heldout_en.txt"
HELDOUT_SHORT_FILE = "heldout_short_en.txt"
SENTIMENT_FILE = "sentiment_en.tsv"
SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
RESERVED = 104  # ids 0..103: specials and the first 99 [unusedN], as in BERT's vocab
# every printable ASCII character gets a piece, so no English text maps to [UNK]
ALPHABET = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))


def _data_lines(name: str) -> list[str]:
    text = resources.files("pocketbert.models").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def corpus_lines() -> list[str]:
    """The project's English corpus, one sentence per line (also the default calibration text)."""
    return _data_lines(CORPUS_FILE)


def heldout_lines() -> list[str]:
    """240 held-out English sentences the project wrote (never calibration text), about a
    third in paraphrase pairs and triples: the default text int8 quality is measured on."""
    return _data_lines(HELDOUT_FILE)


def heldout_short_lines() -> list[str]:
    """48 held-out texts of one to five words the project wrote (chat replies, commands,
    search queries, status labels): their [CLS]/[SEP] rows are half of what a pooled vector
    averages, so they show int8 losses that sentences hide."""
    return _data_lines(HELDOUT_SHORT_FILE)


def sentiment_rows() -> list[tuple[str, str]]:
    """400 labelled (text, positive|negative) reviews the project wrote: fitting and
    checking a classifier head on a real encoder."""
    rows = [line.split("\t") for line in _data_lines(SENTIMENT_FILE)[1:]]
    return [(text, label) for text, label in rows]


def learned_pieces() -> list[str]:
    """The frozen trainer output, in trainer order."""
    return _data_lines(PIECES_FILE)


def train_wordpiece(lines: list[str], budget: int) -> list[str]:
    """Up to ``budget`` WordPiece tokens learned from ``lines``, in the trainer's order."""
    tokenizer = Tokenizer(WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = WordPieceTrainer(
        vocab_size=budget,
        min_frequency=1,
        special_tokens=[],
        initial_alphabet=ALPHABET,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer)
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=lambda token: (vocab[token], token))[:budget]


def build_vocab(vocab_size: int) -> list[str]:
    """Tokens in id order: BERT's special ids, learned pieces, [unusedN] padding.

    A vocab_size smaller than the learned set keeps the trainer's first pieces (the
    alphabet, then the most frequent merges).
    """
    minimum = RESERVED + 2 * len(ALPHABET)  # each character, alone and as a ##continuation
    if vocab_size < minimum:
        raise PocketbertError(f"vocab_size {vocab_size} is too small for a WordPiece vocabulary (need >= {minimum})")
    learned = [t for t in learned_pieces() if t not in SPECIAL_IDS][: vocab_size - RESERVED]
    special_at = {i: t for t, i in SPECIAL_IDS.items()}
    unused = (f"[unused{n}]" for n in range(vocab_size))
    head = [special_at.get(i) or next(unused) for i in range(RESERVED)]
    tail = [next(unused) for _ in range(vocab_size - RESERVED - len(learned))]
    return head + learned + tail


def main() -> None:
    """Retrain the frozen pieces from the corpus (run after editing corpus_en.txt)."""
    target = resources.files("pocketbert.models").joinpath(f"data/{PIECES_FILE}")
    pieces = train_wordpiece(corpus_lines(), 30522 - RESERVED)
    with resources.as_file(target) as path:
        path.write_text("".join(p + "\n" for p in pieces), encoding="utf-8")
    print(f"wrote {len(pieces)} pieces to {target}")


if __name__ == "__main__":
    main()
