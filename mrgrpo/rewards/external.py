"""Your own reward functions, named on a command line: ``module:function``.

Both commands that train take them, in TRL's form (one function per channel that scores a
batch: ``f(prompts, completions, **columns) -> list[float]``, the extra dataset columns as
keyword arguments):

- ``python -m mrgrpo.integrations.trl --config my.yaml`` with ``reward_funcs: [my_rewards:correct, ...]``;
- ``mrgrpo train --reward-funcs my_rewards:correct,my_rewards:brevity`` (either engine), on a
  task's prompts.

A spec is ``package.module:function`` (imported; the current folder is searched first, as
Python does for ``python -m``), ``path/to/file.py:function`` (loaded from the file), or TRL's
dotted ``package.module.function``. :func:`load_reward_funcs` loads them with a one-line error
naming the spec; :class:`RewardFunctions` makes them one mrgrpo reward function
``(completion, prompt_item) -> R floats`` with ``channel_names``, which mrgrpo's trainer and the
TRL engine take.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["load_reward_func", "load_reward_funcs", "parse_reward_spec", "RewardFunctions"]


def parse_reward_spec(spec: str) -> tuple[str, str]:
    """``(module or file, function)`` of a spec; ``ValueError`` for one that names no function."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a reward function is given as module:function, got {spec!r}")
    spec = spec.strip()
    if ":" in spec:
        where, _, name = spec.rpartition(":")
    elif "." in spec and not spec.endswith(".py"):
        where, _, name = spec.rpartition(".")
    else:
        raise ValueError(f"reward function {spec!r} names no function: write module:function "
                         "(e.g. my_rewards:correct) or path/to/file.py:function")
    if not where or not name.isidentifier():
        raise ValueError(f"reward function {spec!r}: write module:function (e.g. my_rewards:correct)")
    return where, name


def _module(where: str, spec: str) -> Any:
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"reward function {spec!r}: the file {path} does not exist")
        unique = f"mrgrpo_user_rewards_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        if unique in sys.modules:
            return sys.modules[unique]
        loader_spec = importlib.util.spec_from_file_location(unique, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[unique] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[unique]
            raise ValueError(f"reward function {spec!r}: importing {path} failed ({type(exc).__name__}: {exc})") \
                from None
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a module beside you, as `python -m` finds it
    try:
        return importlib.import_module(where)
    except Exception as exc:
        raise ValueError(f"reward function {spec!r}: cannot import module {where!r} ({type(exc).__name__}: {exc}); "
                         "is it on PYTHONPATH or in the current folder?") from None


def load_reward_func(spec: str) -> Callable:
    """The callable a spec names (see the module docstring)."""
    where, name = parse_reward_spec(spec)
    module = _module(where, spec)
    func = getattr(module, name, None)
    if func is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ValueError(f"reward function {spec!r}: {where} has no {name!r} (its callables: {', '.join(public)})")
    if not callable(func):
        raise ValueError(f"reward function {spec!r} is a {type(func).__name__}, not a function")
    return func


def load_reward_funcs(specs: str | Sequence[str]) -> list[Callable]:
    """The callables of a list of specs (or one comma-separated string), in order: one per channel."""
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    specs = list(specs or [])
    if not specs:
        raise ValueError("no reward functions: give at least one as module:function")
    return [load_reward_func(s) for s in specs]


def _name(func: Any) -> str:
    return getattr(func, "__name__", None) or type(func).__name__


class RewardFunctions:
    """TRL-style reward functions, one per channel, as one mrgrpo reward function.

    Parameters
    ----------
    funcs : sequence of callables ``f(prompts, completions, **columns) -> list[float]``
    names : sequence of str, optional
        Channel names (default: the functions' names).

    A call ``(completion, prompt_item) -> R floats`` scores one completion: each function gets
    ``prompts=[item["prompt"]]``, ``completions=[completion]`` and every other key of a dict item
    as a one-element column. :meth:`score_batch` scores many at once (one call per function).
    """

    def __init__(self, funcs: Sequence[Callable], names: Sequence[str] | None = None):
        self.funcs = list(funcs)
        if not self.funcs or not all(callable(f) for f in self.funcs):
            raise ValueError("RewardFunctions needs at least one callable reward function")
        self.channel_names = tuple(names) if names else tuple(_name(f) for f in self.funcs)
        if len(self.channel_names) != len(self.funcs):
            raise ValueError(f"{len(self.channel_names)} names for {len(self.funcs)} reward functions")

    @classmethod
    def from_specs(cls, specs: str | Sequence[str]) -> "RewardFunctions":
        """:func:`load_reward_funcs`, as one reward function."""
        return cls(load_reward_funcs(specs))

    def score_batch(self, completions: Sequence[str], items: Sequence[Any]) -> np.ndarray:
        """Scores ``(n, R)`` of completions against their prompt items; a missing score is an error."""
        prompts = [x["prompt"] if isinstance(x, dict) else x for x in items]
        keys = sorted({k for x in items if isinstance(x, dict) for k in x if k != "prompt"})
        columns = {k: [x.get(k) if isinstance(x, dict) else None for x in items] for k in keys}
        out = np.empty((len(completions), len(self.funcs)))
        for k, (f, name) in enumerate(zip(self.funcs, self.channel_names)):
            values = f(prompts=list(prompts), completions=list(completions), **columns)
            if values is None or isinstance(values, (str, bytes)) or len(values) != len(completions):
                raise ValueError(f"reward function {name!r} returned {values!r:.60} for {len(completions)} "
                                 "completions; return one number per completion")
            for i, v in enumerate(values):
                if v is None:
                    raise ValueError(f"reward function {name!r} returned None for completion {i}: mrgrpo's "
                                     "training needs a score for every completion")
                out[i, k] = float(v)
        return out

    def __call__(self, completion: str, prompt_item: Any) -> list[float]:
        return self.score_batch([completion], [prompt_item])[0].tolist()
