"""Pretrain the tiny policy: a small Qwen2 causal LM on mini-math text, on CPU.

The loop in one place (nanoGPT style): build problems from the ``"train"`` split
of :mod:`mrgrpo.tasks.mini_math`, tokenize ``"Q: <question>\\nA: <solution>"`` plus
EOS one character per token, and minimise the next-token loss on the answer part
(solution and EOS; the question is context) with AdamW, warm-up and cosine decay.
Every ``eval_every`` steps the model samples one completion at temperature 1 for
each of ``n_val`` validation problems (train-split problems never trained on),
and the checkpoint whose validation accuracy is closest to ``target_accuracy`` is
kept: the point of the tiny policy is to be *imperfect*, so that groups of
samples disagree and RL has something to learn. Training stops at the first
evaluation that reaches the target (or after ``max_steps``).

Determinism: the model initialisation (``torch.manual_seed(seed)``), the problem
draws (numpy ``SeedSequence``-derived seeds), the data order and the evaluation
samples are all fixed by ``seed``; ``torch.use_deterministic_algorithms(True)`` is
on. The same command therefore writes bitwise-identical weights for the same
torch version and the same number of threads (``threads``, default 2); other
thread counts or torch builds change float summation order and hence the bits.
A ``minutes`` cap, when it triggers, makes the result depend on machine speed,
so the shipped model was trained without hitting it.
"""
from __future__ import annotations

import copy
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mrgrpo.core.files import atomic_folder, atomic_write_text

__all__ = ["TinyConfig", "PretrainResult", "build_model_config", "pretrain", "save_tiny", "answer_correct",
           "training_problems", "encode_examples", "answer_batch",
           "CHAT_TEMPLATE", "alt_answer"]

#: The tiny policy's chat template: one user turn becomes ``"Q: <content>\nA:"``,
#: an assistant turn ``" <content>"`` plus EOS; system turns are dropped. (Jinja
#: would eat a newline written right after a tag, hence the quoted literals.)
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{ 'Q: ' + message['content'] + '\\nA:' }}"
    "{%- elif message['role'] == 'assistant' -%}{{ ' ' + message['content'] + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

_ANSWER = re.compile(r"####\s*(-?\d+)")


def answer_correct(completion: str, gold: str) -> bool:
    """Whether the last ``#### N`` of a completion equals the gold integer.

    Used only to pick the checkpoint during pretraining; the reported metrics use
    :class:`mrgrpo.rewards.math.MathRewardFunction`.
    """
    found = _ANSWER.findall(completion)
    return bool(found) and found[-1].lstrip("+") == str(gold).strip()


@dataclass
class TinyConfig:
    """Everything that defines a tiny-policy pretraining run.

    Attributes
    ----------
    seed : int
        Fixes initialisation, problems, data order and evaluation samples.
    hidden, layers, heads, kv_heads, intermediate : int
        The Qwen2 shape.
    n_train : int
        Distinct training problems (cycled through in a seeded order each epoch).
    step_mix : (p1, p2, p3) or None
        Shares of one-, two- and three-step problems in training (None: the
        generator's own mix, about a third each). The default leans to short
        problems so that a few CPU minutes reach a useful accuracy.
    alt_answer_fraction : float
        Share of training solutions whose last words are ``"the answer is N."``
        instead of ``"#### N"``. The policy learns both forms, so its samples
        sometimes miss the expected format: the format channel then varies within
        groups (with a perfect-format policy it would be constant and carry no
        GRPO signal). Correctness needs the ``####`` form, so it is 0 on those.
    batch_size, lr, warmup, max_steps : training schedule (cosine decay to
        ``lr * min_lr_ratio`` at ``max_steps``).
    eval_every, n_val : validation cadence and size (temperature-1 samples).
    target_accuracy : float
        Keep the checkpoint whose validation accuracy is closest to this.
    max_new_tokens : int
        Budget for validation samples.
    threads : int
        ``torch.set_num_threads``; part of what makes the bits reproducible. The
        default, 2, is the machine the project is built on; the recipe takes
        about 10 minutes there (``data/tiny-math/README.md``).
    minutes : float or None
        Wall-clock safety cap (makes the result machine-dependent when it triggers).
    """

    seed: int = 0
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 384
    max_positions: int = 384
    n_train: int = 60000
    step_mix: tuple[float, float, float] | None = (0.5, 0.3, 0.2)
    alt_answer_fraction: float = 0.2
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    warmup: int = 100
    max_steps: int = 5000
    eval_every: int = 300
    n_val: int = 256
    target_accuracy: float = 0.4
    max_new_tokens: int = 64
    threads: int = 2
    minutes: float | None = None


@dataclass
class PretrainResult:
    """The kept model, its tokenizer and the training record."""

    model: Any
    tokenizer: Any
    config: TinyConfig
    best_step: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    steps_run: int = 0
    stopped_by: str = ""


def build_model_config(cfg: TinyConfig, vocab_size: int, eos_id: int):
    """The ``transformers.Qwen2Config`` of the tiny policy (tied embeddings)."""
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=vocab_size, hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                       num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                       num_key_value_heads=cfg.kv_heads, max_position_embeddings=cfg.max_positions,
                       tie_word_embeddings=True, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id,
                       rope_theta=10000.0, use_cache=True)


def _child_seeds(seed: int, n: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n)]


def training_problems(cfg: TinyConfig, seed: int) -> list[dict]:
    from mrgrpo.tasks.mini_math import make_mini_math

    if cfg.step_mix is None:
        return make_mini_math(cfg.n_train, seed=seed, split="train")
    mix = np.asarray(cfg.step_mix, dtype=float)
    if mix.shape != (3,) or (mix < 0).any() or not np.isclose(mix.sum(), 1.0):
        raise ValueError(f"step_mix must be three non-negative shares summing to 1, got {cfg.step_mix}")
    counts = np.floor(mix * cfg.n_train).astype(int)
    counts[int(np.argmax(mix))] += cfg.n_train - counts.sum()
    pool = make_mini_math(int(np.ceil(3.3 * counts.max())) + 100, seed=seed, split="train")
    out: list[dict] = []
    for k, c in zip((1, 2, 3), counts):
        got = [p for p in pool if p["n_steps"] == k][:c]
        if len(got) < c:  # pragma: no cover - the pool is sized for this
            raise ValueError(f"not enough {k}-step problems for step_mix {cfg.step_mix}")
        out += got
    return out


def alt_answer(solution: str) -> str:
    """``"... #### 17"`` -> ``"... the answer is 17."`` (the second answer form in training)."""
    head, _, answer = solution.rpartition("####")
    return f"{head}the answer is {answer.strip()}."


def encode_examples(tokenizer, problems: list[dict], alt: np.ndarray) -> tuple[list[list[int]], list[int]]:
    from mrgrpo.tasks.mini_math import format_prompt

    texts = [format_prompt(p) + " " + (alt_answer(p["solution"]) if a else p["solution"])
             for p, a in zip(problems, alt)]
    full = tokenizer(texts, add_special_tokens=False)["input_ids"]
    head = tokenizer([format_prompt(p) for p in problems], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return [ids + [eos] for ids in full], [len(h) for h in head]


def answer_batch(seqs: list[list[int]], starts: list[int], pad_id: int):
    """``(B, L)`` input ids and labels, right-padded; labels are -100 outside the answer.

    No attention mask is needed: with right padding and causal attention no real
    token can attend to a pad, and pads carry no loss (``tests/tiny/test_tiny.py``
    checks that the per-token losses agree with and without one).
    """
    import torch

    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), L), -100, dtype=torch.long)
    for i, (s, a) in enumerate(zip(seqs, starts)):
        ids[i, :len(s)] = torch.as_tensor(s)
        labels[i, a:len(s)] = torch.as_tensor(s[a:])  # loss on the answer and EOS only
    return ids, labels


def evaluate_accuracy(model, tokenizer, problems: list[dict], *, temperature: float, seed: int,
                      max_new_tokens: int = 64, batch_size: int = 256) -> float:
    """Share of problems whose one sample (seeded per problem) ends in the right ``#### N``."""
    from mrgrpo.lm.sampling import sample_completions

    was_training = model.training
    model.eval()
    comps = sample_completions(model, tokenizer, problems, 1, temperature=temperature,
                               max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size)
    if was_training:
        model.train()
    return float(np.mean([answer_correct(c[0], p["gold"]) for c, p in zip(comps, problems)]))


def pretrain(cfg: TinyConfig, log: Callable[[str], None] | None = print, progress: bool = True,
             on_best: Callable[[PretrainResult], None] | None = None) -> PretrainResult:
    """Run one pretraining; see the module docstring.

    ``on_best(result)``, if given, is called whenever the kept checkpoint changes
    (e.g. to write it to disk, so an interrupted run still leaves a model).

    Returns
    -------
    PretrainResult
        ``model`` holds the kept checkpoint's weights (in eval mode).
    """
    import torch
    from transformers import Qwen2ForCausalLM

    from mrgrpo.tasks.mini_math import make_mini_math
    from mrgrpo.tiny.tokenizer import build_tokenizer

    if cfg.max_steps < 1 or cfg.eval_every < 1 or cfg.batch_size < 1:
        raise ValueError(f"max_steps, eval_every and batch_size must be >= 1, got {cfg.max_steps}, "
                         f"{cfg.eval_every}, {cfg.batch_size}")
    if not 0.0 <= cfg.target_accuracy <= 1.0:
        raise ValueError(f"target_accuracy must lie in [0, 1], got {cfg.target_accuracy}")
    log = log or (lambda s: None)
    t_start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    s_model, s_train, s_val, s_order, s_eval, s_alt = _child_seeds(cfg.seed, 6)

    tokenizer = build_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    train = training_problems(cfg, s_train)
    seen = {p["id"] for p in train}
    val = [p for p in make_mini_math(cfg.n_val * 2, seed=s_val, split="train") if p["id"] not in seen][:cfg.n_val]
    if not 0.0 <= cfg.alt_answer_fraction < 1.0:
        raise ValueError(f"alt_answer_fraction must lie in [0, 1), got {cfg.alt_answer_fraction}")
    alt = np.random.default_rng(s_alt).random(len(train)) < cfg.alt_answer_fraction
    seqs, starts = encode_examples(tokenizer, train, alt)
    too_long = max(len(s) for s in seqs)
    if too_long + cfg.max_new_tokens > cfg.max_positions:
        raise ValueError(f"max_positions = {cfg.max_positions} is too small for examples of {too_long} tokens")

    torch.manual_seed(s_model % 2**63)
    model = Qwen2ForCausalLM(build_model_config(cfg, len(tokenizer), tokenizer.eos_token_id))
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        frac = min(1.0, (step - cfg.warmup) / max(1, cfg.max_steps - cfg.warmup))
        return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))

    rng = np.random.default_rng(s_order)
    lengths = np.array([len(x) for x in seqs])

    def epoch_batches() -> list[np.ndarray]:
        # shuffle, then sort windows of 64 batches by length (less padding), then shuffle the batches
        order = rng.permutation(len(seqs))
        win = cfg.batch_size * 64
        batches = []
        for w in range(0, len(order) - cfg.batch_size + 1, win):
            chunk = order[w:w + win]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches += [chunk[i:i + cfg.batch_size] for i in range(0, len(chunk) - cfg.batch_size + 1, cfg.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    batches = epoch_batches()
    cursor = 0
    history: list[dict] = []
    best: tuple[float, int, dict] | None = None
    stopped_by = "max_steps"
    bar = None
    if progress:
        from mrgrpo.core.progress import progress_bar
        bar = progress_bar(total=cfg.max_steps, desc="pretrain tiny-math", unit="step")
    running = 0.0
    step = 0
    for step in range(1, cfg.max_steps + 1):
        if cursor >= len(batches):
            batches, cursor = epoch_batches(), 0
        idx = batches[cursor]
        cursor += 1
        ids, labels = answer_batch([seqs[i] for i in idx], [starts[i] for i in idx], tokenizer.eos_token_id)
        for g in opt.param_groups:
            g["lr"] = lr_at(step - 1)
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}")
        timed_out = cfg.minutes is not None and time.perf_counter() - t_start > 60 * cfg.minutes
        if step % cfg.eval_every == 0 or step == cfg.max_steps or timed_out:
            acc = evaluate_accuracy(model, tokenizer, val, temperature=1.0, seed=s_eval,
                                    max_new_tokens=cfg.max_new_tokens)
            rec = {"step": step, "loss": round(running, 4), "val_acc_t1": acc,
                   "seconds": round(time.perf_counter() - t_start, 1)}
            history.append(rec)
            log(f"step {step}: loss {running:.4f}, validation accuracy (T=1) {acc:.3f}, {rec['seconds']} s")
            gap = abs(acc - cfg.target_accuracy)
            if best is None or gap <= best[0]:
                best = (gap, step, copy.deepcopy(model.state_dict()))
                if on_best is not None:
                    on_best(PretrainResult(model=model, tokenizer=tokenizer, config=cfg, best_step=step,
                                           history=list(history), seconds=time.perf_counter() - t_start,
                                           steps_run=step, stopped_by="running"))
            if acc >= cfg.target_accuracy:
                stopped_by = "target_accuracy"
                break
            if timed_out:
                stopped_by = "minutes"
                break
    if bar is not None:
        bar.close()
    assert best is not None
    model.load_state_dict(best[2])
    model.eval()
    return PretrainResult(model=model, tokenizer=tokenizer, config=cfg, best_step=best[1], history=history,
                          seconds=time.perf_counter() - t_start, steps_run=step, stopped_by=stopped_by)


def save_tiny(result: PretrainResult, out: str | Path) -> Path:
    """Write the model, the tokenizer and ``training.json`` to ``out``."""
    out = Path(out)
    with atomic_folder(out) as tmp:
        result.model.save_pretrained(tmp, safe_serialization=True)
        result.tokenizer.save_pretrained(tmp)
    # name the class transformers instantiates for model_type qwen2 anyway (5.x forces it; 4.x reads
    # this and loads the fast Qwen2 tokenizer from tokenizer.json)
    tc_path = out / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["tokenizer_class"] = "Qwen2Tokenizer"
    atomic_write_text(tc_path, json.dumps(tc, indent=2) + "\n")
    for f in out.iterdir():
        if f.is_file():
            f.chmod(0o644)  # safetensors are written owner-only; the repo ships them readable
    record = {"config": asdict(result.config), "best_step": result.best_step, "steps_run": result.steps_run,
              "stopped_by": result.stopped_by, "seconds": round(result.seconds, 1), "history": result.history}
    atomic_write_text(out / "training.json", json.dumps(record, indent=2) + "\n")
    return out
