"""BERT's WordPiece tokenizer on the ``tokenizers`` library, with transformers' API.

One implementation serves every architecture: MobileBERT, SqueezeBERT, DistilBERT and BERT
all use BERT's uncased WordPiece (lowercasing, accent stripping, CJK characters split,
punctuation split, control characters dropped, words over 100 characters -> [UNK]). The
classes named in the transformers docs (``MobileBertTokenizer``, ``...TokenizerFast`` ...)
are subclasses of this one defined beside each model (DistilBERT's differs only in not
returning token_type_ids); ``tokenizer.py`` picks the one a checkpoint needs.

Inputs are padded on the right (absolute position embeddings) and truncated with the
``tokenizers`` strategies (longest_first, only_first, only_second), so ids, masks and
offsets are what transformers' BertTokenizerFast gives on the same vocab.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from pocketbert.errors import PocketbertError
from pocketbert.textfile import parse_json
from pocketbert.models.hub import resolve

VOCAB_NAME = "vocab.txt"
TOKENIZER_NAME = "tokenizer.json"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_NAME = "special_tokens_map.json"
SPECIAL_ROLES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
MAX_CHARS_PER_WORD = 100
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")


class TokenizerError(PocketbertError):
    """Missing or unreadable vocabulary, or a request the tokenizer cannot honour."""


class BatchEncoding(dict):
    """input_ids / token_type_ids / attention_mask (+ extras) with attribute access; keeps the
    ``tokenizers`` Encodings for word ids, sequence ids and offsets."""

    def __init__(self, data: dict[str, Any], encodings: list[Encoding], batched: bool):
        super().__init__(data)
        self.encodings = encodings
        self.is_batched = batched

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def word_ids(self, index: int = 0) -> list[int | None]:
        return self.encodings[index].word_ids

    def sequence_ids(self, index: int = 0) -> list[int | None]:
        return self.encodings[index].sequence_ids


def read_vocab_file(path: str | Path) -> dict[str, int]:
    """vocab.txt: one token per line, id = line number (duplicates keep the first id)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"{path}: cannot read vocabulary ({exc})") from None
    if lines and lines[-1] == "":
        lines.pop()
    vocab: dict[str, int] = {}
    for index, token in enumerate(lines):
        vocab.setdefault(token.rstrip("\r"), index)
    if not vocab:
        raise TokenizerError(f"{path}: empty vocabulary")
    return vocab


def _truncation_strategy(truncation: bool | str) -> str | None:
    if truncation in (False, None, "do_not_truncate"):
        return None
    if truncation is True:
        return "longest_first"
    if truncation not in TRUNCATION_STRATEGIES:
        raise TokenizerError(
            f"unknown truncation {truncation!r} (use one of {', '.join(TRUNCATION_STRATEGIES)})"
        )
    return truncation


class BertTokenizerFast:
    """transformers' BertTokenizerFast API over one ``tokenizers.Tokenizer``."""

    model_input_names: tuple[str, ...] = ("input_ids", "token_type_ids", "attention_mask")

    def __init__(
        self,
        vocab: dict[str, int] | str | Path | None = None,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        model_max_length: int = 512,
        tokenizer_object: Tokenizer | None = None,
    ):
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        self.do_lower_case = do_lower_case
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.model_max_length = model_max_length
        if tokenizer_object is not None:
            self._tokenizer = tokenizer_object
        else:
            if vocab is None:
                raise TokenizerError("a tokenizer needs a vocabulary (vocab.txt or tokenizer.json)")
            if not isinstance(vocab, dict):
                vocab = read_vocab_file(vocab)
            self._check_special_tokens(vocab.get)
            self._tokenizer = self._build(vocab)
        self._check_special_tokens(self._tokenizer.token_to_id)
        self._tokenizer.add_special_tokens(
            [AddedToken(t, normalized=False, special=True) for t in self.all_special_tokens]
        )
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._lock = threading.Lock()

    def _check_special_tokens(self, lookup) -> None:
        missing = [t for t in self.all_special_tokens if lookup(t) is None]
        if missing:
            raise TokenizerError(f"vocabulary lacks special tokens {', '.join(missing)}")

    def _build(self, vocab: dict[str, int]) -> Tokenizer:
        """The same pipeline transformers builds for BertTokenizerFast."""
        tok = Tokenizer(WordPiece(vocab, unk_token=self.unk_token, max_input_chars_per_word=MAX_CHARS_PER_WORD))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=self.tokenize_chinese_chars,
            strip_accents=self.strip_accents,
            lowercase=self.do_lower_case,
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        cls, sep = self.cls_token, self.sep_token
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
        )
        return tok

    # ---- files --------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **overrides: Any) -> "BertTokenizerFast":
        """tokenizer.json if present (exactly what transformers saved), else vocab.txt, with
        options from tokenizer_config.json."""
        directory = resolve(name_or_path)
        options = cls._read_options(directory)
        options.update(overrides)
        tokenizer_json = directory / TOKENIZER_NAME
        if tokenizer_json.is_file():
            try:
                obj = Tokenizer.from_file(str(tokenizer_json))
            except Exception as exc:
                raise TokenizerError(f"{tokenizer_json}: not a readable tokenizer.json ({exc})") from None
            source, args = tokenizer_json, {"tokenizer_object": obj}
        else:
            source, args = directory / VOCAB_NAME, {"vocab": directory / VOCAB_NAME}
            if not source.is_file():
                raise TokenizerError(f"{directory}: no {VOCAB_NAME} or {TOKENIZER_NAME}")
        try:
            return cls(**args, **options)
        except TokenizerError as exc:
            message = str(exc) if str(source) in str(exc) else f"{source}: {exc}"
            raise TokenizerError(message) from None

    @staticmethod
    def _read_options(directory: Path) -> dict[str, Any]:
        path = directory / TOKENIZER_CONFIG_NAME
        if not path.is_file():
            return {}
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:
            raise TokenizerError(f"{path}: not readable ({exc})") from None
        config = parse_json(text, str(path), TokenizerError)
        keys = ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "model_max_length", *SPECIAL_ROLES)
        options = {k: config[k] for k in keys if k in config and config[k] is not None}
        for role in SPECIAL_ROLES:  # transformers may store {"content": "[UNK]", ...}
            if isinstance(options.get(role), dict):
                options[role] = options[role]["content"]
        if not isinstance(options.get("model_max_length", 0), int) or options.get("model_max_length", 0) > 10**9:
            options.pop("model_max_length", None)  # transformers writes a huge sentinel when unknown
        return options

    def save_vocabulary(self, save_directory: str | Path, filename_prefix: str | None = None) -> tuple[str]:
        """Write vocab.txt (tokens in id order), as transformers' BERT tokenizers do."""
        name = f"{filename_prefix}-{VOCAB_NAME}" if filename_prefix else VOCAB_NAME
        path = Path(save_directory) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tokens = sorted(self.get_vocab().items(), key=lambda kv: kv[1])
        path.write_text("".join(token + "\n" for token, _ in tokens), encoding="utf-8")
        return (str(path),)

    def save_pretrained(self, save_directory: str | Path) -> list[str]:
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = list(self.save_vocabulary(directory))
        self._tokenizer.save(str(directory / TOKENIZER_NAME))
        config = {
            "tokenizer_class": type(self).__name__.removesuffix("Fast"),
            "do_lower_case": self.do_lower_case,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "model_max_length": self.model_max_length,
            **{role: getattr(self, role) for role in SPECIAL_ROLES},
        }
        (directory / TOKENIZER_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        special = {role: getattr(self, role) for role in SPECIAL_ROLES}
        (directory / SPECIAL_TOKENS_MAP_NAME).write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
        return written + [str(directory / n) for n in (TOKENIZER_NAME, TOKENIZER_CONFIG_NAME, SPECIAL_TOKENS_MAP_NAME)]

    # ---- vocabulary -----------------------------------------------------------------------
    @property
    def backend_tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def all_special_tokens(self) -> list[str]:
        return [getattr(self, role) for role in SPECIAL_ROLES]

    @property
    def all_special_ids(self) -> list[int]:
        return [self._tokenizer.token_to_id(t) for t in self.all_special_tokens]

    def _id(self, token: str) -> int:
        return self._tokenizer.token_to_id(token)

    unk_token_id = property(lambda self: self._id(self.unk_token))
    sep_token_id = property(lambda self: self._id(self.sep_token))
    pad_token_id = property(lambda self: self._id(self.pad_token))
    cls_token_id = property(lambda self: self._id(self.cls_token))
    mask_token_id = property(lambda self: self._id(self.mask_token))

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        if isinstance(tokens, str):
            found = self._tokenizer.token_to_id(tokens)
            return self.unk_token_id if found is None else found
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False):
        if isinstance(ids, (int, np.integer)):
            return self._tokenizer.id_to_token(int(ids))
        special = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(int(i)) for i in ids if int(i) not in special]

    # ---- the special-token helpers the SqueezeBERT docs name --------------------------------
    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        """[CLS] A [SEP] or [CLS] A [SEP] B [SEP]."""
        ids = [self.cls_token_id, *token_ids_0, self.sep_token_id]
        if token_ids_1 is not None:
            ids += [*token_ids_1, self.sep_token_id]
        return ids

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where build_inputs_with_special_tokens puts a special token, else 0."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise TokenizerError("token_ids_1 must be None when the ids already hold special tokens")
            special = set(self.all_special_ids)
            return [1 if i in special else 0 for i in token_ids_0]
        mask = [1] + [0] * len(token_ids_0) + [1]
        if token_ids_1 is not None:
            mask += [0] * len(token_ids_1) + [1]
        return mask

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """0 for [CLS] A [SEP], 1 for B [SEP]."""
        first = [0] * (len(token_ids_0) + 2)
        return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)

    # ---- encoding -------------------------------------------------------------------------
    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        return self._tokenizer.encode(text, pair, add_special_tokens=add_special_tokens).tokens

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True, **kwargs: Any) -> list[int]:
        return self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"]

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str = False,
        max_length: int | None = None,
        stride: int = 0,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool = True,
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
        return_overflowing_tokens: bool = False,
    ) -> BatchEncoding:
        batched = not isinstance(text, str)
        texts = list(text) if batched else [text]
        if text_pair is None:
            pairs: list[str | None] = [None] * len(texts)
        else:
            pairs = list(text_pair) if batched else [text_pair]
            if len(pairs) != len(texts):
                raise TokenizerError(f"{len(texts)} texts but {len(pairs)} text pairs")
            # as transformers' (fast) BertTokenizer: an empty second text is no second text
            pairs = [p if p != "" else None for p in pairs]
        for value in (*texts, *(p for p in pairs if p is not None)):
            if not isinstance(value, str):
                raise TokenizerError(f"text must be str, got {type(value).__name__}")

        strategy = _truncation_strategy(truncation)
        if strategy is not None and max_length is None:
            max_length = self.model_max_length
        pad_to = self._padding_length(padding, max_length)
        # truncation and padding are settings of the shared tokenizers object: one call at a time
        with self._lock:
            encodings = self._encode_batch(texts, pairs, strategy, max_length, stride, pad_to, add_special_tokens)

        if return_overflowing_tokens:
            flat, mapping = [], []
            for index, enc in enumerate(encodings):
                for piece in [enc, *enc.overflowing]:
                    flat.append(piece)
                    mapping.append(index)
            encodings = flat
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        data: dict[str, Any] = {"input_ids": [e.ids for e in encodings]}
        if return_token_type_ids:
            data["token_type_ids"] = [e.type_ids for e in encodings]
        if return_attention_mask:
            data["attention_mask"] = [e.attention_mask for e in encodings]
        if return_special_tokens_mask:
            data["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if return_offsets_mapping:
            data["offset_mapping"] = [[tuple(o) for o in e.offsets] for e in encodings]
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = mapping
        if return_tensors is not None:
            data = self._as_tensors(data, return_tensors)
        elif not batched and not return_overflowing_tokens:
            data = {k: v[0] for k, v in data.items()}
        return BatchEncoding(data, encodings, batched or return_overflowing_tokens)

    def _encode_batch(self, texts, pairs, strategy, max_length, stride, pad_to, add_special_tokens) -> list[Encoding]:
        tok = self._tokenizer
        try:
            if strategy is not None:
                tok.enable_truncation(max_length, stride=stride, strategy=strategy)
            if pad_to is not False:
                tok.enable_padding(
                    direction="right", pad_id=self.pad_token_id, pad_type_id=0, pad_token=self.pad_token,
                    length=pad_to,
                )
            inputs = [t if p is None else (t, p) for t, p in zip(texts, pairs)]
            return tok.encode_batch(inputs, add_special_tokens=add_special_tokens)
        except Exception as exc:  # tokenizers raises plain Exceptions for impossible truncations
            raise TokenizerError(f"cannot encode: {exc}") from None
        finally:
            tok.no_truncation()
            tok.no_padding()

    @staticmethod
    def _padding_length(padding: bool | str, max_length: int | None) -> int | None | bool:
        """False: no padding; None: pad to the longest in the batch; int: pad to that length."""
        if padding in (False, None, "do_not_pad"):
            return False
        if padding in (True, "longest"):
            return None
        if padding == "max_length":
            if max_length is None:
                raise TokenizerError("padding='max_length' needs max_length")
            return max_length
        raise TokenizerError(f"unknown padding {padding!r} (use True, 'longest' or 'max_length')")

    @staticmethod
    def _as_tensors(data: dict[str, Any], kind: str) -> dict[str, Any]:
        if kind not in ("np", "pt"):
            raise TokenizerError(f"return_tensors must be 'np' or 'pt', got {kind!r}")
        out = {}
        for key, rows in data.items():
            if key == "overflow_to_sample_mapping":
                array = np.asarray(rows, dtype=np.int64)
            else:
                lengths = {len(r) for r in rows}
                if len(lengths) > 1:
                    raise TokenizerError("sequences have different lengths: pass padding=True to batch them")
                array = np.asarray(rows, dtype=np.int64)
            if kind == "pt":
                import torch

                array = torch.from_numpy(array)
            out[key] = array
        return out

    # ---- decoding -------------------------------------------------------------------------
    def decode(self, token_ids: int | Sequence[int], skip_special_tokens: bool = False) -> str:
        if isinstance(token_ids, (int, np.integer)):
            token_ids = [int(token_ids)]
        ids = [int(i) for i in np.asarray(token_ids).reshape(-1)]
        return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """WordPiece tokens back to text (## pieces joined to their word)."""
        return self._tokenizer.decoder.decode(list(tokens))

    def batch_decode(self, sequences: Sequence[Sequence[int]], skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(s, skip_special_tokens=skip_special_tokens) for s in sequences]


# The docs name a "slow" and a "fast" class per model; both are this implementation.
BertTokenizer = BertTokenizerFast
