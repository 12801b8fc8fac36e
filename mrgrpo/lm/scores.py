"""Score projections: ``g_j = v^T grad_theta log pi(y_j | x)`` for real completions.

Theorem 3 is a statement about the policy-gradient estimate
``g_hat = (1/m) sum_j A_j grad log pi(y_j | x)``. Projected on a fixed direction
``v`` of parameter space it becomes a scalar per rollout, the *score projection*
``g_j``, and the theorem's ``tau^2`` is its variance. This module computes ``g_j``
exactly for any Hugging Face causal LM (optionally a peft LoRA model).

Method
------
:func:`score_projections` uses forward-mode differentiation: ``torch.func.jvp``
of the batch's per-sequence log-probabilities (a ``torch.func.functional_call``
of the model) along the tangent ``v`` gives ``v^T grad log pi(y_i | x_i)`` for
every row ``i`` of the batch in one forward pass. Rows that share a prompt (all
the rollouts of a prompt, across seeds) run that prompt once; its key/value
cache, with its tangent, is copied to the rows, which then run only their
completion tokens. :func:`score_projections_naive` is the reference: one forward
and one backward pass per completion on the unpadded sequence, then a dot product
of the full gradient with each ``v``.

Layout and masks (the trainer's, :mod:`mrgrpo.train.masks`): prompts are
left-padded, completions right-padded; position ids count only real tokens; the
log-probability sums over the completion tokens, including the EOS token when the
completion ended on one. ``normalize="mean"`` divides by that token count (the
sequence-mean objective of the trainer).

Temperature: ``temperature=T`` differentiates ``log_softmax(logits / T)``, the
distribution a sampler at temperature ``T`` draws from. Only then does the
score-function identity ``E[g] = 0`` hold for the sampled completions; scoring
``T = 0.8`` samples with the ``T = 1`` policy biases every ``g``. ``T = 0``
(greedy decoding) is refused: a deterministic policy has no score.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from mrgrpo.core.checks import SeedLike, as_generator, as_sequence
from mrgrpo.core.progress import progress_bar
from mrgrpo.lm.kvcache import cache_kwarg, cache_of
from mrgrpo.lm.padding import left_pad, position_ids
from mrgrpo.lm.prompts import encode, render

__all__ = ["PARAM_SETS", "NORMALIZE", "select_parameters", "random_directions", "tokenize_pairs",
           "score_projections", "score_projections_naive", "TokenizedPairs", "check_temperature"]

PARAM_SETS = ("auto", "lora", "trainable", "all")
NORMALIZE = ("sum", "mean")


# ----------------------------------------------------------------------------- parameters and directions
def _is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def select_parameters(model, params: str = "auto") -> dict:
    """The parameters the directions live in, by name (``named_parameters`` order, ties removed).

    Parameters
    ----------
    params : {"auto", "lora", "trainable", "all"}
        ``"lora"``: the LoRA matrices (names containing ``lora_``); ``"trainable"``:
        those with ``requires_grad``; ``"all"``: every parameter; ``"auto"``: LoRA
        for a peft model, all parameters otherwise.

    Returns
    -------
    dict name -> torch.Tensor (the live parameters, not copies)
    """
    if params not in PARAM_SETS:
        raise ValueError(f"params must be one of {PARAM_SETS}, got {params!r}")
    if params == "auto":
        params = "lora" if _is_peft(model) else "all"
    named = list(model.named_parameters())
    if params == "lora":
        out = {n: p for n, p in named if "lora_" in n}
        if not out:
            raise ValueError("params='lora' but the model has no LoRA parameters (no name contains 'lora_')")
    elif params == "trainable":
        out = {n: p for n, p in named if p.requires_grad}
        if not out:
            raise ValueError("params='trainable' but no parameter of the model requires grad")
    else:
        out = dict(named)
    return out


def _torch_seed(seed: SeedLike) -> int:
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        return int(np.random.SeedSequence(int(seed)).generate_state(1, dtype=np.uint64)[0] >> 1)
    return int(as_generator(seed).integers(0, 2**62))


def random_directions(params: dict, n_directions: int, seed: SeedLike = 0) -> list:
    """``n_directions`` independent uniformly random unit vectors in the space of ``params``.

    Each is a dict name -> tensor shaped like the parameter (on its device and
    dtype) with total Euclidean norm 1 over all the parameters. The draw is made
    on the CPU in float32 from a seeded ``torch.Generator`` (parameter by
    parameter in ``params`` order), so it does not depend on the device.
    """
    import torch

    if isinstance(n_directions, (bool, np.bool_)) or not isinstance(n_directions, (int, np.integer)) \
            or n_directions < 1:
        raise ValueError(f"n_directions must be a positive int, got {n_directions!r}")
    gen = torch.Generator().manual_seed(_torch_seed(seed))
    out = []
    for _ in range(int(n_directions)):
        d = {n: torch.randn(p.shape, generator=gen, dtype=torch.float32) for n, p in params.items()}
        norm = float(np.sqrt(sum(float((t.double() ** 2).sum()) for t in d.values())))
        out.append({n: (t.double() / norm).to(device=params[n].device, dtype=params[n].dtype)
                    for n, t in d.items()})
    return out


def _as_directions(directions: Any, params: dict, seed: SeedLike) -> list:
    """An int (draw that many) or a list of name -> tensor dicts (checked against ``params``)."""
    if isinstance(directions, (int, np.integer)) and not isinstance(directions, (bool, np.bool_)):
        return random_directions(params, int(directions), seed)
    if isinstance(directions, dict):
        directions = [directions]
    dirs = list(directions)
    if not dirs:
        raise ValueError("directions is empty")
    for i, d in enumerate(dirs):
        if not isinstance(d, dict) or set(d) != set(params):
            missing = sorted(set(params) - set(d))[:3] if isinstance(d, dict) else []
            raise ValueError(f"direction {i} must be a dict with exactly the selected parameters' names "
                             f"({len(params)} tensors); missing e.g. {missing}")
        for n, t in d.items():
            if tuple(t.shape) != tuple(params[n].shape):
                raise ValueError(f"direction {i}: tensor {n!r} has shape {tuple(t.shape)}, "
                                 f"the parameter {tuple(params[n].shape)}")
    return [{n: t.to(device=params[n].device, dtype=params[n].dtype) for n, t in d.items()} for d in dirs]


# ----------------------------------------------------------------------------- tokens
@dataclass
class TokenizedPairs:
    """Prompt and completion token ids of ``n`` rows (completion ids include EOS when it ended on one)."""

    prompt_ids: list
    completion_ids: list

    @property
    def n_tokens(self) -> np.ndarray:
        """Completion tokens that count in the log-probability, shape ``(n,)``."""
        return np.array([len(c) for c in self.completion_ids], dtype=np.int64)


def _int_rows(x, what: str) -> list:
    rows = []
    for i, r in enumerate(x):
        if hasattr(r, "tolist"):
            r = r.tolist()
        if isinstance(r, str) or not all(isinstance(t, (int, np.integer)) for t in r):
            raise ValueError(f"{what} row {i} must be a sequence of token ids when no tokenizer is given")
        rows.append([int(t) for t in r])
    return rows


def tokenize_pairs(tokenizer, prompts: Sequence[Any], completions: Sequence[Any],
                   eos: bool | Sequence[bool] = True) -> TokenizedPairs:
    """Token ids of (prompt, completion) pairs.

    Parameters
    ----------
    tokenizer : Hugging Face tokenizer or None
        With a tokenizer, prompts are prompt items (string, chat list or dict; see
        :func:`mrgrpo.lm.prompts.render`) and completions are strings, both
        encoded without special tokens. Without one, both are sequences of token ids.
    eos : bool or sequence of bool, length ``n``
        Whether each completion ended on EOS (its log-probability then includes
        the EOS token). Requires ``tokenizer.eos_token_id`` when a tokenizer is given
        and any entry is true; with token ids, pass the EOS id inside the completion
        instead and ``eos=False``.
    """
    prompts, completions = as_sequence(prompts, "prompts"), as_sequence(completions, "completions")
    n = len(prompts)
    if len(completions) != n:
        raise ValueError(f"{n} prompts but {len(completions)} completions")
    if n == 0:
        raise ValueError("no (prompt, completion) pairs given")
    flags = np.broadcast_to(np.asarray(eos, dtype=bool), (n,)) if np.ndim(eos) == 0 else np.asarray(eos, bool)
    if flags.shape != (n,):
        raise ValueError(f"eos must be a bool or {n} bools, got shape {flags.shape}")
    if tokenizer is None:
        if flags.any():
            raise ValueError("with token ids (no tokenizer), append the EOS id to the completions and pass eos=False")
        p_ids, c_ids = _int_rows(prompts, "prompt"), _int_rows(completions, "completion")
    else:
        texts = [render(p, tokenizer) for p in prompts]
        cache: dict[str, list] = {}
        for t, p in zip(texts, prompts):
            if t not in cache:
                cache[t] = encode(p, tokenizer)
        p_ids = [cache[t] for t in texts]
        if not all(isinstance(c, str) for c in completions):
            raise ValueError("with a tokenizer, completions must be strings")
        c_ids = [list(ids) for ids in tokenizer(list(completions), add_special_tokens=False)["input_ids"]]
        if flags.any():
            eos_id = tokenizer.eos_token_id
            if eos_id is None:
                raise ValueError("eos=True needs a tokenizer with an eos_token_id")
            c_ids = [c + [int(eos_id)] if f else c for c, f in zip(c_ids, flags)]
    for i, p in enumerate(p_ids):
        if len(p) == 0:
            raise ValueError(f"prompt {i} has no tokens")
    return TokenizedPairs(p_ids, c_ids)


# ----------------------------------------------------------------------------- log-probabilities
def _batch_plan(tok: TokenizedPairs, batch_size: int) -> list:
    """Row batches: rows grouped by prompt, longest completions first, ``batch_size`` rows each."""
    order = sorted(range(len(tok.prompt_ids)),
                   key=lambda i: (tuple(tok.prompt_ids[i]), -len(tok.completion_ids[i]), i))
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def _batch_tensors(tok: TokenizedPairs, rows: list, pad_id: int, device):
    import torch

    heads: dict[tuple, int] = {}
    inv = [heads.setdefault(tuple(tok.prompt_ids[i]), len(heads)) for i in rows]
    h_ids, h_mask = left_pad(list(heads), pad_id)
    C = max(1, max(len(tok.completion_ids[i]) for i in rows))
    c_ids = torch.full((len(rows), C), pad_id, dtype=torch.long)
    c_mask = torch.zeros((len(rows), C), dtype=torch.long)
    for r, i in enumerate(rows):
        c = tok.completion_ids[i]
        if c:
            c_ids[r, :len(c)] = torch.as_tensor(c)
            c_mask[r, :len(c)] = 1
    inv_t = torch.as_tensor(inv, dtype=torch.long)
    return (h_ids.to(device), h_mask.to(device), c_ids.to(device), c_mask.to(device), inv_t.to(device))


def _completion_logprob(model, params: dict, h_ids, h_mask, c_ids, c_mask, inv, cache_kw: str,
                        temperature: float = 1.0):
    """Summed completion log-probability per row, shape ``(n,)``, via the prompt cache.

    The distinct prompts run once (left-padded); their cache and last-position
    logits are copied to the rows; the rows then run their completion tokens.
    The token distribution is ``softmax(logits / temperature)``.
    Differentiable (forward and reverse mode) in ``params``.
    """
    import torch
    from torch.func import functional_call


    out = functional_call(model, params, (), {
        "input_ids": h_ids, "attention_mask": h_mask, "position_ids": position_ids(h_mask),
        "use_cache": True, "logits_to_keep": 1}, strict=False)
    cache = cache_of(out)
    first = out.logits[:, -1, :].index_select(0, inv)  # predicts completion token 0
    if h_ids.shape[0] != c_ids.shape[0] or bool((inv != torch.arange(len(inv), device=inv.device)).any()):
        cache.reorder_cache(inv)
    full_mask = torch.cat([h_mask.index_select(0, inv), c_mask], dim=1)
    pos = position_ids(full_mask)[:, h_mask.shape[1]:]
    out2 = functional_call(model, params, (), {
        "input_ids": c_ids, "attention_mask": full_mask, "position_ids": pos, "use_cache": True,
        cache_kw: cache}, strict=False)
    logits = torch.cat([first.unsqueeze(1), out2.logits[:, :-1, :]], dim=1)  # (n, C, V)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # a half-precision log-softmax over a large vocabulary loses the tail
    if temperature != 1.0:
        logits = logits / temperature
    lp = torch.log_softmax(logits, dim=-1).gather(-1, c_ids.unsqueeze(-1)).squeeze(-1)
    return (lp * c_mask.to(lp.dtype)).sum(dim=1)


def check_temperature(temperature: float) -> float:
    """The sampling temperature of the scored completions, as a float; refuses ``T <= 0``.

    ``T = 0`` is greedy decoding: the policy is deterministic, ``log pi`` is 0 or
    ``-inf``, and a score ``grad log pi`` does not exist.
    """
    if isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, (int, float, np.integer, np.floating)):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    t = float(temperature)
    if t == 0:
        raise ValueError("temperature = 0 is greedy decoding: a deterministic policy has no score function "
                         "(log pi is 0 or -inf); score completions sampled at a temperature > 0")
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def _check_common(normalize: str, batch_size: int) -> None:
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _finish(out: np.ndarray, n_tok: np.ndarray, normalize: str) -> np.ndarray:
    if normalize == "mean":
        out = out / np.maximum(n_tok, 1)[:, None]  # an empty completion has log-prob 0 either way
    return out


def _pad_id(tokenizer) -> int:
    if tokenizer is None:
        return 0
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pid) if pid is not None else 0


def _math_sdpa():
    """Forward-mode AD needs the composite ("math") attention kernel; the fused ones lack jvp rules."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


def score_projections(model, tokenizer, prompts: Sequence[Any], completions: Sequence[Any], directions: Any = 4,
                      seed: SeedLike = 0, params: str = "auto", normalize: str = "sum",
                      eos: bool | Sequence[bool] = True, batch_size: int = 64, progress: bool = False,
                      return_directions: bool = False, temperature: float = 1.0):
    """Score projections ``v_d^T grad log pi_T(y_i | x_i)`` by forward-mode AD.

    Parameters
    ----------
    model : transformers causal LM (or a peft model around one), in eval mode
    tokenizer : tokenizer or None
        None when ``prompts`` and ``completions`` are token-id sequences.
    prompts, completions : sequences of length ``n``
        Row ``i`` is the pair (prompt ``i``, completion ``i``); see :func:`tokenize_pairs`.
    directions : int or list of dict
        A number of random unit directions (drawn with ``seed`` by
        :func:`random_directions`), or the directions themselves.
    params : {"auto", "lora", "trainable", "all"}
        The parameter space of the directions (:func:`select_parameters`).
    normalize : {"sum", "mean"}
        Whole-sequence log-probability, or divided by the completion's token count.
    eos : bool or sequence of bool
        Whether each completion ended on EOS (see :func:`tokenize_pairs`).
    batch_size : int
        Rows per forward pass. Rows are grouped by prompt and sorted by completion
        length, so a batch carries little padding; a prompt is run once per batch.
    return_directions : bool
        Also return the list of directions used.
    temperature : float, > 0
        The temperature the completions were sampled at: the score is that of
        ``pi_T = softmax(logits / T)``, the distribution they were drawn from (for
        which ``E[g] = 0``). ``0`` (greedy) is refused: see :func:`check_temperature`.

    Returns
    -------
    numpy.ndarray, shape ``(n, n_directions)``, float64
        (and the directions when ``return_directions``)
    """
    import torch
    from torch.func import jvp

    _check_common(normalize, batch_size)
    temperature = check_temperature(temperature)
    sel = select_parameters(model, params)
    dirs = _as_directions(directions, sel, seed)
    tok = tokenize_pairs(tokenizer, prompts, completions, eos)
    device = next(model.parameters()).device
    primals = {k: v.detach() for k, v in sel.items()}
    cache_kw = cache_kwarg(model)
    pad_id = _pad_id(tokenizer)
    n = len(tok.prompt_ids)
    out = np.zeros((n, len(dirs)))
    plan = _batch_plan(tok, int(batch_size))
    bar = None
    if progress:
        bar = progress_bar(total=n * len(dirs), desc="score projections (jvp)", unit="row", leave=False)
    try:
        with torch.no_grad(), _math_sdpa():
            for rows in plan:
                ts = _batch_tensors(tok, rows, pad_id, device)

                def f(p, ts=ts):
                    return _completion_logprob(model, p, *ts, cache_kw, temperature)

                for d, v in enumerate(dirs):
                    _, tangent = jvp(f, (primals,), (v,))
                    out[rows, d] = tangent.double().cpu().numpy()
                    if bar is not None:
                        bar.update(len(rows))
    finally:
        if bar is not None:
            bar.close()
    res = _finish(out, tok.n_tokens, normalize)
    return (res, dirs) if return_directions else res


def score_projections_naive(model, tokenizer, prompts: Sequence[Any], completions: Sequence[Any], directions: Any = 4,
                            seed: SeedLike = 0, params: str = "auto", normalize: str = "sum",
                            eos: bool | Sequence[bool] = True, return_gradients: bool = False,
                            temperature: float = 1.0):
    """Reference: one forward and backward pass per completion, then dot with each direction.

    Same arguments and result as :func:`score_projections`. Each row runs alone,
    unpadded, through the model's ordinary forward (no cache, default attention
    kernel), so it shares none of the batching, masking or cache code of the
    forward-mode path. With ``return_gradients`` also returns the per-row
    gradients as an ``(n, D)`` array over the selected parameters (tests).
    """
    import torch

    _check_common(normalize, 1)
    temperature = check_temperature(temperature)
    sel = select_parameters(model, params)
    names = list(sel)
    dirs = _as_directions(directions, sel, seed)
    tok = tokenize_pairs(tokenizer, prompts, completions, eos)
    device = next(model.parameters()).device
    n = len(tok.prompt_ids)
    out = np.zeros((n, len(dirs)))
    grads = [] if return_gradients else None
    tensors = [sel[k] for k in names]
    req = [t.requires_grad for t in tensors]
    try:
        for t in tensors:
            t.requires_grad_(True)
        for i in range(n):
            p, c = tok.prompt_ids[i], tok.completion_ids[i]
            if not c:
                g = [torch.zeros_like(t) for t in tensors]
            else:
                ids = torch.as_tensor([p + c], dtype=torch.long, device=device)
                logits = model(input_ids=ids, use_cache=False).logits[0, len(p) - 1:-1] / temperature
                lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[0, len(p):, None]).sum()
                g = torch.autograd.grad(lp, tensors, allow_unused=True)
                g = [torch.zeros_like(t) if gi is None else gi for gi, t in zip(g, tensors)]
            for d, v in enumerate(dirs):
                out[i, d] = float(sum((gi.double() * v[k].double()).sum() for gi, k in zip(g, names)))
            if grads is not None:
                grads.append(torch.cat([gi.detach().double().reshape(-1) for gi in g]).cpu().numpy())
    finally:
        for t, r in zip(tensors, req):
            t.requires_grad_(r)
    res = _finish(out, tok.n_tokens, normalize)
    if return_gradients:
        G = np.stack(grads)
        return res, (_finish(G, tok.n_tokens, normalize) if normalize == "mean" else G)
    return res
