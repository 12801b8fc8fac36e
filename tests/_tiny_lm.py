"""Test helper: a tiny random Qwen2 model + character-level tokenizer on disk.

Transformers 5.x loads ``Qwen2Tokenizer`` (byte-level) for any qwen2 checkpoint,
so the vocabulary spells space and newline as the byte-level ``Ġ`` and ``Ċ``;
``build_tiny_lm`` checks that the reloaded tokenizer round-trips text.
"""
from __future__ import annotations

from pathlib import Path

CHARS = list("0123456789+-=?*abcdefghijklmnopqrstuvwxyzQA:.") + ["Ġ", "Ċ"]
EOS = "<|endoftext|>"
PAD = "<|pad|>"
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'][0] }}:{{ m['content'] }}{{ '\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ 'a:' }}{% endif %}")


def build_tiny_lm(directory, *, seed: int = 0, hidden: int = 32, layers: int = 2,
                  pad_equals_eos: bool = True, chat_template: bool = False,
                  init_std: float = 0.02) -> str:
    """Write a random tiny Qwen2 causal LM and its tokenizer to ``directory``; return the path.

    ``pad_equals_eos=True`` makes the pad token the EOS token (the hard case for masks).
    ``init_std`` is the weight initialisation scale; with the default 0.02 the tied
    embeddings bound every logit to about +-0.6, so the next-token distribution is
    nearly uniform whatever LoRA does to the hidden states; learning tests use more.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {PAD: 0, EOS: 1}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token=EOS,
                                   pad_token=EOS if pad_equals_eos else PAD)
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    cfg = Qwen2Config(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, tie_word_embeddings=True, initializer_range=init_std,
                      eos_token_id=vocab[EOS], pad_token_id=vocab[EOS if pad_equals_eos else PAD])
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(str(directory))
    fast.save_pretrained(str(directory))
    reloaded = AutoTokenizer.from_pretrained(str(directory))
    text = "Q: 12 + 3 = ?\nA: 15"
    assert reloaded.decode(reloaded(text)["input_ids"]) == text, "tiny tokenizer does not round-trip"
    return str(directory)
