"""The shipped tiny policy (data/tiny-math) and its mini Tier-2 corpus (data/mini-corpus)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import torch

from mrgrpo.corpus import load_npz, load_parquet, pack_for_analysis  # noqa: E402
from mrgrpo.tasks.mini_math import MINI_MATH_ALPHABET, format_example, format_prompt, make_mini_math  # noqa: E402
from mrgrpo.tiny import DEFAULT_CORPUS_DIR, DEFAULT_MODEL_DIR, evaluate_policy, tiny_reward_fn  # noqa: E402
from mrgrpo.tiny.pretrain import TinyConfig, alt_answer, pretrain  # noqa: E402
from mrgrpo.tiny.tokenizer import build_tokenizer, byte_symbols  # noqa: E402

MODEL, CORPUS = DEFAULT_MODEL_DIR, DEFAULT_CORPUS_DIR
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(MODEL, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(MODEL, local_files_only=True)
    return model, tok


def _texts() -> list[str]:
    probs = make_mini_math(200, seed=5, split="train") + make_mini_math(200, seed=5, split="test")
    return ([format_example(p) for p in probs] + [format_prompt(p) + " " + alt_answer(p["solution"]) for p in probs[:50]]
            + ["  two  spaces  ", "a\n\nb\n", "\ttab and\r\nwindows", "#### -12.5", MINI_MATH_ALPHABET,
               "Q: 3 + 4 = ?\nA: 7. #### 7", "ünïcödé ✓ and emoji 🙂", ""])


# ----------------------------------------------------------------------------- tokenizer
def test_byte_symbols_spell_space_and_newline_the_byte_level_way():
    sym = byte_symbols()
    assert len(set(sym)) == 256 and sym[ord(" ")] == "Ġ" and sym[ord("\n")] == "Ċ" and sym[ord("a")] == "a"


def test_built_tokenizer_is_character_level_and_round_trips():
    tok = build_tokenizer()
    for t in _texts():
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == t
        if t and all(c in MINI_MATH_ALPHABET for c in t):
            assert len(ids) == len(t)  # one token per character
    assert tok.eos_token == tok.pad_token == "<|endoftext|>" and tok.eos_token_id == 0


def test_reloaded_tokenizer_round_trips_exactly(shipped):
    _, tok = shipped
    built = build_tokenizer()
    assert type(tok).__name__ == "Qwen2Tokenizer"  # what transformers 5 forces for model_type qwen2
    for t in _texts():
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids, skip_special_tokens=True) == t, t
        assert ids == built(t, add_special_tokens=False)["input_ids"]
    ids = tok("#### 7", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tok.decode(ids, skip_special_tokens=True) == "#### 7"
    assert tok.pad_token_id == tok.eos_token_id == 0


def test_chat_template_gives_the_training_prompt(shipped):
    _, tok = shipped
    msgs = [{"role": "user", "content": "tom has 3 pens. how many pens does tom have now?"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == format_prompt(msgs[0]["content"])


# ----------------------------------------------------------------------------- model
def test_shipped_model_loads_offline_and_is_small(shipped, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoModelForCausalLM.from_pretrained(MODEL, local_files_only=True)
    assert model.config.model_type == "qwen2" and type(model).__name__ == "Qwen2ForCausalLM"
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params < 5_000_000
    total = sum(f.stat().st_size for f in MODEL.iterdir() if f.is_file())
    assert total < 20 * 2**20
    assert (MODEL / "model.safetensors").exists()
    _, tok = shipped
    assert model.config.eos_token_id == tok.eos_token_id and model.config.vocab_size >= len(tok)
    card = (MODEL / "README.md").read_text()
    record = json.loads((MODEL / "training.json").read_text())
    assert record["command"] in card and f"{n_params:,}" in card  # the card says how it was built
    assert record["n_params"] == n_params
    assert 0.2 <= record["eval"]["t1_accuracy"] <= 0.7


def test_base_behaviour_leaves_room_for_rl(shipped):
    """Fresh held-out problems (another seed than the model card's): accuracy and channel variability."""
    model, tok = shipped
    problems = make_mini_math(96, seed=2024, split="test")
    ev = evaluate_policy(model, tok, problems, tiny_reward_fn(tok), m=8, seed=3)
    assert 0.2 <= ev["t1_accuracy"] <= 0.7, ev["t1_accuracy"]
    for name in ("correctness", "length", "format"):
        assert ev["varies_fraction"][name] > 0.5, (name, ev["varies_fraction"])
    r = ev["rewards_t1"]
    assert (r[..., 0] <= r[..., 2]).all()  # correctness needs the #### form


def test_pretraining_is_deterministic():
    cfg = TinyConfig(hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, n_train=192, batch_size=8,
                     max_steps=6, eval_every=3, n_val=8, max_new_tokens=8, target_accuracy=1.0, warmup=2)
    a = pretrain(cfg, log=None, progress=False)
    b = pretrain(cfg, log=None, progress=False)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    c = pretrain(dataclasses.replace(cfg, seed=1), log=None, progress=False)
    assert not all(torch.equal(sa[k], c.model.state_dict()[k]) for k in sa)
    # training moved the weights away from the initialisation
    assert a.steps_run == 6 and a.history[-1]["loss"] < a.history[0]["loss"] + 1.0


def test_training_batches_need_no_attention_mask(shipped):
    """Right padding + causal attention: dropping the mask leaves every answer-token loss unchanged.

    The pretraining loop relies on this to skip the mask. The check is per token (a mean
    could hide a pad leaking into one position) and uses the shipped model, whose
    attention is far from uniform.
    """
    from mrgrpo.tiny.pretrain import answer_batch, encode_examples

    model, tok = shipped
    probs = make_mini_math(12, seed=7, split="train")
    seqs, starts = encode_examples(tok, probs, np.array([i % 3 == 0 for i in range(len(probs))]))
    assert len({len(s) for s in seqs}) > 3  # real padding in the batch
    ids, labels = answer_batch(seqs, starts, tok.eos_token_id)
    mask = (torch.arange(ids.shape[1])[None, :] < torch.tensor([len(s) for s in seqs])[:, None]).long()

    def token_losses(**kw):
        with torch.no_grad():
            logits = model(input_ids=ids, **kw).logits[:, :-1]
        return torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction="none")

    keep = labels[:, 1:] != -100
    assert keep.sum() > 200
    torch.testing.assert_close(token_losses()[keep], token_losses(attention_mask=mask)[keep], rtol=1e-5, atol=1e-6)
    # the check has teeth: with left padding the pads come first and, unmasked, change the logits
    short = int(np.argmin([len(s) for s in seqs]))
    n = len(seqs[short])
    left = torch.full_like(ids[short], tok.eos_token_id)
    left[-n:] = ids[short, :n]
    with torch.no_grad():
        right_logits = model(input_ids=ids[short:short + 1]).logits[0, :n]
        left_logits = model(input_ids=left[None]).logits[0, -n:]
    assert (right_logits - left_logits).abs().max() > 1e-2


def test_bad_pretrain_config():
    with pytest.raises(ValueError, match="target_accuracy"):
        pretrain(TinyConfig(target_accuracy=1.5), log=None, progress=False)
    with pytest.raises(ValueError, match="step_mix"):
        pretrain(TinyConfig(step_mix=(0.5, 0.5, 0.5), n_train=10), log=None, progress=False)


# ----------------------------------------------------------------------------- corpus
@pytest.fixture(scope="module")
def corpus():
    return load_parquet(CORPUS / "corpus.parquet")


def test_shipped_corpus_loads_and_matches_its_npz(corpus):
    params = json.loads((CORPUS / "generation.json").read_text())
    P, K = params["n_prompts"], params["K_seeds"]
    npz = load_npz(CORPUS / "corpus.npz")
    assert corpus.reward_names == ("correctness", "length", "format") == npz.reward_names
    for m in params["m_grid"]:
        a, b = pack_for_analysis(corpus, m), pack_for_analysis(npz, m)
        assert a.shape == (P, K, m, 3)
        np.testing.assert_array_equal(a, b)
    x = pack_for_analysis(corpus, max(params["m_grid"]))
    assert set(np.unique(x[..., 0])) <= {0.0, 1.0} and set(np.unique(x[..., 2])) <= {0.0, 1.0}
    assert (x[..., 1] <= 0).all() and (x[..., 1] >= -1).all() and (x[..., 0] <= x[..., 2]).all()
    sizes = sum(f.stat().st_size for f in CORPUS.iterdir())
    assert sizes < 20 * 2**20


def test_shipped_corpus_na_ratio_ci(corpus):
    from mrgrpo.analysis import analyze

    res = analyze(pack_for_analysis(corpus, 8), w=np.array([1.0, 1.0, 0.5]), n_boot=300)
    lo, hi = res.ratio_na_ci
    assert np.isfinite([res.ratio_na, lo, hi]).all()
    assert lo <= res.ratio_na <= hi and lo < hi
    assert 0 < res.frac_degenerate < 1


def test_a_slice_of_the_corpus_regenerates_exactly(corpus):
    """Two prompts x two seeds of the shipped corpus, regenerated from the shipped model, score the same."""
    from mrgrpo.corpus.hf import HFBackend

    params = json.loads((CORPUS / "generation.json").read_text())
    m = max(params["m_grid"])
    b = HFBackend(MODEL, None, temperature=params["temperature"], max_new_tokens=params["max_new_tokens"],
                  progress=False)
    b.set_reward_fn(tiny_reward_fn(b.tokenizer, params["L0"]))
    pi, ki = (0, corpus.n_prompts - 1), (0, corpus.K_seeds - 1)
    prompts = [corpus.prompts[i] for i in pi]
    groups = {(g.prompt_idx, g.seed_idx): g for g in corpus.groups(m)}
    seeds = [groups[(0, k)].seed for k in ki]
    new = b.generate_groups(prompts, m, seeds)
    for g, (p, k) in zip(new, [(p, k) for p in pi for k in ki]):
        old = groups[(p, k)]
        np.testing.assert_array_equal(g.rewards, old.rewards)
        if old.completions is not None:
            assert g.completions == old.completions


# ----------------------------------------------------------------------------- CLI
def test_cli_reports_a_missing_model_clearly(capsys, tmp_path):
    from mrgrpo.cli import main as mrgrpo_main

    assert mrgrpo_main(["tiny", "corpus", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "mrgrpo tiny pretrain" in err
    assert mrgrpo_main(["tiny", "eval", "--model", "data/not-built-yet"]) == 2
    assert "data/not-built-yet" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
