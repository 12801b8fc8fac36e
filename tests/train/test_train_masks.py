"""Masks on hand-built batches: left padding, EOS in the middle, pad == EOS, truncation."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from _tiny_lm import build_tiny_lm  # noqa: E402

from mrgrpo.train.losses import sequence_token_logprobs  # noqa: E402
from mrgrpo.lm.padding import left_pad, position_ids  # noqa: E402
from mrgrpo.lm.sampling import sample_tokens  # noqa: E402
from mrgrpo.train.masks import completion_mask, full_attention_mask  # noqa: E402

EOS = 1


def test_left_pad_puts_padding_on_the_left():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=EOS)
    assert ids.tolist() == [[5, 6, 7], [EOS, EOS, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    # positions restart at 0 on each row's first real token
    assert position_ids(mask).tolist() == [[0, 1, 2], [0, 0, 0]]


def test_left_pad_rejects_empty_prompt():
    with pytest.raises(ValueError, match="empty prompt"):
        left_pad([[3], []], pad_id=0)


def test_completion_mask_eos_in_middle_pad_equals_eos_and_truncation():
    # pad == EOS == 1: row 0 ends at column 2 and is padded with more 1s after it;
    # row 1 emits EOS first; row 2 never emits EOS (truncated); row 3 ends on the last column.
    comp = torch.tensor([[4, 5, EOS, EOS, EOS],
                         [EOS, EOS, EOS, EOS, EOS],
                         [4, 5, 6, 7, 8],
                         [4, 5, 6, 7, EOS]])
    mask, truncated = completion_mask(comp, [EOS])
    assert mask.tolist() == [[1, 1, 1, 0, 0],   # the first EOS is trained, the padding is not
                             [1, 0, 0, 0, 0],
                             [1, 1, 1, 1, 1],
                             [1, 1, 1, 1, 1]]
    assert truncated.tolist() == [False, False, True, False]
    dropped, _ = completion_mask(comp, [EOS], mask_truncated=True)
    assert dropped[2].tolist() == [0, 0, 0, 0, 0]
    assert dropped[0].tolist() == mask[0].tolist()


def test_completion_mask_several_eos_ids():
    comp = torch.tensor([[4, 9, 5, 1], [4, 5, 1, 9]])
    mask, truncated = completion_mask(comp, [1, 9])
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 0]]
    assert not truncated.any()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_lm(tmp_path_factory.mktemp("tiny_masks"))
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_padded_batch_logprobs_equal_unpadded_rows(tiny):
    """Prompt padding and post-EOS tokens change no completion log-prob (nothing leaks)."""
    model, tok = tiny
    prompts = [tok("Q: 12 + 3 = ?\nA:")["input_ids"], tok("Q: 1?")["input_ids"]]
    comps = torch.tensor([[5, 6, EOS, EOS], [7, 8, 9, 10]])
    p_ids, p_mask = left_pad(prompts, EOS)
    c_mask, _ = completion_mask(comps, [EOS])
    ids = torch.cat([p_ids, comps], 1)
    attn = full_attention_mask(p_mask, c_mask)
    with torch.no_grad():
        batched = sequence_token_logprobs(model, ids, attn, comps.shape[1], temperature=0.7)
        for i, p in enumerate(prompts):
            n = int(c_mask[i].sum())
            row = torch.tensor([p + comps[i, :n].tolist()])
            alone = sequence_token_logprobs(model, row, torch.ones_like(row), n, temperature=0.7)
            torch.testing.assert_close(batched[i, :n], alone[0], atol=1e-5, rtol=1e-5)


def test_sampling_pads_after_eos_and_is_reproducible(tiny):
    model, tok = tiny
    prompts = [tok("Q: 1 + 2 = ?")["input_ids"], tok("Q:")["input_ids"]] * 32
    eos_bias = torch.zeros(model.config.vocab_size)
    eos_bias[EOS] = 2.5  # make EOS common so rows end at different columns

    class Biased(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, **kw):
            out = self.m(**kw)
            out.logits = out.logits + eos_bias
            return out

    biased = Biased(model)
    u = np.random.default_rng(3).random((len(prompts), 12))
    a, ended = sample_tokens(biased, prompts, u, temperature=1.0, eos_ids=[EOS], pad_id=EOS)
    b, _ = sample_tokens(biased, prompts, u.copy(), temperature=1.0, eos_ids=[EOS], pad_id=EOS)
    assert torch.equal(a, b)
    mask, truncated = completion_mask(a, [EOS])
    assert 0 < int((~truncated).sum()) < a.shape[0] or a.shape[1] < 12
    assert torch.equal(ended, ~truncated)
    # after the first EOS only padding follows
    for row, mrow in zip(a.tolist(), mask.tolist()):
        n = sum(mrow)
        assert all(t == EOS for t in row[n:])
    # the KV-cache loop samples from the same distribution a full forward gives: greedy check
    # (row 1 is left-padded: its cached positions and masks must match an unpadded run)
    g, _ = sample_tokens(model, prompts[:2], np.zeros((2, 6)), temperature=0.0, eos_ids=[EOS], pad_id=EOS)
    for i in range(2):
        ids = torch.tensor([prompts[i]])
        for t in range(g.shape[1]):
            nxt = model(input_ids=ids).logits[0, -1].argmax()
            assert int(nxt) == int(g[i, t])
            if int(nxt) == EOS:
                break
            ids = torch.cat([ids, nxt.view(1, 1)], 1)
