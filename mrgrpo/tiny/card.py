"""The tiny policy's model card (``README.md`` beside its weights)."""
from __future__ import annotations

from pathlib import Path

from mrgrpo.core.files import atomic_write_text

__all__ = ["write_model_card"]


def _mix_text(mix) -> str:
    if mix is None:
        return "the generator's own (about a third each of one-, two- and three-step problems)"
    return (f"{mix[0]:.0%} one-step, {mix[1]:.0%} two-step, {mix[2]:.0%} three-step problems "
            "(held-out evaluation uses the generator's own mix, about a third each)")


def _command_time(record: dict) -> str:
    secs = record.get("command_seconds")
    return "" if secs is None else f" ({secs:.0f} s, {secs / 60:.1f} min, for the whole command, evaluation included)"


def write_model_card(out: Path, record: dict) -> Path:
    """Write ``README.md`` (the model card) from a pretraining + evaluation record."""
    cfg, ev, tr = record["config"], record["eval"], record["training"]
    vf = ev["varies_fraction"]
    hist = "\n".join(f"| {h['step']} | {h['loss']:.3f} | {h['val_acc_t1']:.3f} | {h['seconds']:.0f} |"
                     for h in tr["history"])
    by_steps = "\n".join(f"| {s} | {v['greedy']:.3f} | {v['t1']:.3f} |" for s, v in ev["accuracy_by_steps"].items())
    text = f"""---
license: mit
library_name: transformers
pipeline_tag: text-generation
tags: [mrgrpo, tiny, mini-math, qwen2]
---
# tiny-math: the mrgrpo book's tiny policy

A {record['n_params']:,}-parameter causal LM with the Qwen2 architecture
(`transformers.Qwen2Config`: hidden {cfg['hidden']}, {cfg['layers']} layers, {cfg['heads']} heads,
{cfg['kv_heads']} key/value heads, MLP {cfg['intermediate']}, tied embeddings) and a character-level
tokenizer (one token per byte, spelled byte-level so that transformers' `Qwen2Tokenizer` reloads it
exactly; `<|endoftext|>` = id 0 is EOS and pad). It answers mini-math word problems
(`mrgrpo.tasks.mini_math`) in the GSM8K style, **imperfectly on purpose**: groups of samples disagree,
so multi-reward GRPO has signal in every channel. Files: {record['size_mb']:.2f} MB.

Prompt format (also the chat template, one user turn): `"Q: <question>\\nA:"`; the model continues
with `" <worked steps> #### <answer>"` and EOS.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("data/tiny-math")
tok = AutoTokenizer.from_pretrained("data/tiny-math")
```

## How it was made

```
{record['command']}
```

- Code: `mrgrpo/tiny/pretrain.py` (seed {cfg['seed']}, `torch.manual_seed` and numpy `SeedSequence`
  children of the seed for initialisation, problems, data order and evaluation samples;
  `torch.use_deterministic_algorithms(True)`, {cfg['threads']} thread(s)).
- Data: {cfg['n_train']:,} distinct problems of the mini-math `"train"` split
  (`make_mini_math(n, seed=<child seed>, split="train")`), one to three arithmetic steps, text
  `"Q: <question>\\nA: <solution>"` + EOS; loss on the answer part only. Problem mix:
  {_mix_text(cfg.get('step_mix'))}. In a seeded {cfg.get('alt_answer_fraction', 0.0):.0%} of the
  examples the solution ends `"the answer is N."` instead of `"#### N"`: the policy learns both
  forms, so its samples sometimes miss the expected format and the format channel varies within
  groups (correctness needs the `####` form, so such samples also score 0 on correctness).
- Optimiser: AdamW (lr {cfg['lr']}, betas (0.9, 0.98), weight decay {cfg['weight_decay']}), batch
  {cfg['batch_size']}, {cfg['warmup']} warm-up steps, cosine decay towards {cfg['min_lr_ratio']} x lr at step
  {cfg['max_steps']}, gradient clipping 1.0.
- Checkpoint choice: every {cfg['eval_every']} steps one temperature-1 sample on {cfg['n_val']} validation
  problems (train split, never trained on); training stops at the first evaluation that reaches
  the target accuracy {cfg['target_accuracy']}, and the evaluated checkpoint closest to the target is kept.
  Steps run: {tr['steps_run']} (stopped by: {tr['stopped_by']}); kept checkpoint: step {tr['best_step']}.
- Time: {tr['seconds']:.0f} s of training wall time{_command_time(record)} on {record['machine']}
  (torch {record['torch']}, transformers {record['transformers']}).{(' ' + record['notes']) if record.get('notes') else ''}
- Reproducibility: rerunning the command writes bitwise-identical weights with the same torch
  version and thread count; other versions or thread counts change float summation order and so
  the exact bits (and possibly which checkpoint is kept), not the recipe.

| step | loss (EMA) | validation accuracy, T=1 | seconds |
|---:|---:|---:|---:|
{hist}

## Base behaviour on held-out mini-math

{ev['n_problems']} problems of the `"test"` split (`make_mini_math({ev['n_problems']}, seed={record['eval_seed']},
split="test")`, problems whose arithmetic skeleton never occurs in training), reward
`MathRewardFunction(L0={record['L0']}, tokenizer=<this tokenizer>)` (channels correctness, length
`tanh(-|log(n_chars / L0)|)`, format), max_new_tokens {ev['max_new_tokens']}.

| metric | value |
|---|---:|
| accuracy, greedy | {ev['greedy_accuracy']:.3f} |
| accuracy, temperature 1 ({ev['m']} samples per problem) | {ev['t1_accuracy']:.3f} |
| groups of {ev['m']} (T=1) where correctness varies | {vf.get('correctness', float('nan')):.3f} |
| groups of {ev['m']} where length varies | {vf.get('length', float('nan')):.3f} |
| groups of {ev['m']} where format varies | {vf.get('format', float('nan')):.3f} |
| groups where all three vary | {ev['all_vary_fraction']:.3f} |
| mean format score (T=1) | {ev['channel_means'].get('format', float('nan')):.3f} |
| mean length score (T=1) | {ev['channel_means'].get('length', float('nan')):.3f} |
| mean completion length (characters) | {ev['mean_completion_chars']:.1f} |
| sampling throughput (T=1, {record.get('eval_threads', 1)} thread(s)) | {ev['completions_per_second']:.0f} completions/s |

| arithmetic steps | accuracy, greedy | accuracy, T=1 |
|---:|---:|---:|
{by_steps}
"""
    path = Path(out) / "README.md"
    atomic_write_text(path, text)
    return path
