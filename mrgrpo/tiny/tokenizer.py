"""The tiny policy's character-level tokenizer.

One token per byte (so one per character for the ASCII text of mini-math),
plus ``<|endoftext|>`` (id 0) as EOS and pad. The 256 byte symbols are spelled
the GPT-2 / Qwen2 byte-level way (space is ``Ġ``, newline ``Ċ``) and there are no
merges. Why: transformers 5.x instantiates ``Qwen2Tokenizer`` for every
``model_type=qwen2`` checkpoint, and that class is byte-level BPE. A vocabulary
written in that spelling is read back by it unchanged, so text round-trips
exactly after ``AutoTokenizer.from_pretrained`` (a plain character vocabulary
would silently lose spaces and newlines).
"""
from __future__ import annotations

from functools import lru_cache

EOS_TOKEN = "<|endoftext|>"

# Qwen2's pre-tokenizer split; with no merges it changes nothing about the
# tokens, but using the same one keeps the saved and reloaded tokenizers equal.
_PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
                      r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


@lru_cache(maxsize=1)
def byte_symbols() -> tuple[str, ...]:
    """The 256 byte-level symbols, in byte order (``byte_symbols()[32] == 'Ġ'``)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return tuple(table[b] for b in range(256))


def build_tokenizer():
    """Build the tokenizer as a ``transformers`` fast tokenizer.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        vocabulary of 257: ``<|endoftext|>`` = 0 (EOS and pad), then byte ``b``
        at id ``b + 1``.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    vocab = {EOS_TOKEN: 0}
    vocab.update({sym: i + 1 for i, sym in enumerate(byte_symbols())})
    tok = Tokenizer(BPE(vocab=vocab, merges=[], unk_token=None, continuing_subword_prefix="",
                        end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOS_TOKEN])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN,
                                   unk_token=EOS_TOKEN, padding_side="left",
                                   model_max_length=512, clean_up_tokenization_spaces=False)
