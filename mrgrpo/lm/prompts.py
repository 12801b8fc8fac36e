"""Prompts: one type, one normalizer, one way to turn a prompt into model input.

A *prompt item* is what a user hands the library:

- a string, ``"What is 2 + 3?"``;
- a chat-message list, ``[{"role": "user", "content": "..."}, ...]``;
- a dict with ``"prompt"`` (a string or a chat list) or ``"messages"`` (a chat
  list) and any metadata (``"gold"``, a scenario id, ...);
- a ``(prompt, gold)`` pair (the corpus convention), read as
  ``{"prompt": prompt, "gold": gold}``.

:func:`as_prompt` turns any of them into a :class:`Prompt`: the body the model
sees, and the item the reward function receives (the dict form for a pair, the
item unchanged otherwise). :func:`render` applies the chat template (and an
optional system prompt) the same way for sampling, training and scoring, and
:func:`encode` tokenizes the rendered text. Nothing here imports torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

__all__ = ["Prompt", "as_prompt", "as_prompts", "prompt_text", "render", "encode", "has_chat_template"]

ChatMessages = tuple  # of {"role": str, "content": str} dicts
TemplateChoice = Union[bool, str]


def _is_chat(x: Any) -> bool:
    return (isinstance(x, (list, tuple)) and len(x) > 0
            and all(isinstance(m, Mapping) and "role" in m and "content" in m for m in x))


@dataclass(frozen=True)
class Prompt:
    """A normalized prompt.

    Attributes
    ----------
    body : str or tuple of dict
        The text, or the chat messages, the model is given (before any template).
    item : object
        What reward functions receive: the item as given (a ``(prompt, gold)``
        pair becomes ``{"prompt": prompt, "gold": gold}``).
    """

    body: Union[str, ChatMessages]
    item: Any

    @property
    def is_chat(self) -> bool:
        return not isinstance(self.body, str)

    @property
    def text(self) -> str:
        """A readable one-string view: the text, or the last user turn of a chat."""
        if isinstance(self.body, str):
            return self.body
        users = [str(m["content"]) for m in self.body if m.get("role") == "user"]
        return users[-1] if users else str(self.body[-1]["content"])

    @property
    def gold(self) -> str:
        """The reference answer from the item's metadata (``""`` when it has none)."""
        return str(self.item.get("gold", "")) if isinstance(self.item, Mapping) else ""

    @property
    def key(self) -> str:
        """A stable string that identifies the prompt without a tokenizer (seeds of mock rollouts)."""
        if isinstance(self.body, str):
            return self.body
        return json.dumps([dict(m) for m in self.body], sort_keys=True, default=str)

    def record(self) -> dict:
        """The item as a dict (``prompt``/``messages``, ``gold`` and the other metadata), for corpora."""
        if isinstance(self.item, Mapping):
            out = dict(self.item)
        elif self.is_chat:
            out = {"messages": [dict(m) for m in self.body]}
        else:
            out = {"prompt": self.body}
        out.setdefault("gold", "")
        return out


def as_prompt(item: Any, where: str = "prompt") -> Prompt:
    """Normalize one prompt item; ``ValueError`` naming ``where`` if it is not one.

    Parameters
    ----------
    item : str, chat list, dict or ``(prompt, gold)`` pair
        See the module docstring.
    where : str
        How the error message names the item (e.g. ``"prompts[3]"``).
    """
    if isinstance(item, Prompt):
        return item
    if isinstance(item, str):
        if not item:
            raise ValueError(f"{where} is an empty string")
        return Prompt(item, item)
    if isinstance(item, Mapping):
        if "messages" in item:
            body = item["messages"]
        elif "prompt" in item:
            body = item["prompt"]
        else:
            raise ValueError(f"{where} is a dict without a 'prompt' or 'messages' key: keys {sorted(map(str, item))}")
        return Prompt(as_prompt(body, f"{where}[{'messages' if 'messages' in item else 'prompt'}]").body, item)
    if _is_chat(item):
        return Prompt(tuple(dict(m) for m in item), item)
    if isinstance(item, tuple) and len(item) == 2 and (isinstance(item[0], str) or _is_chat(item[0])):
        return as_prompt({"prompt": item[0], "gold": item[1]}, where)
    raise ValueError(f"{where} must be a string, a list of chat messages ({{'role', 'content'}} dicts), a dict "
                     f"with 'prompt' or 'messages', or a (prompt, gold) pair; got {type(item).__name__}")


def as_prompts(items: Sequence[Any], where: str = "prompts", *, optional: bool = False) -> list[Prompt]:
    """Normalize a non-empty sequence of prompt items (a bare string is refused, not split into characters).

    With ``optional`` (held-out prompts), ``None`` or an empty sequence gives ``[]``.
    """
    if isinstance(items, (str, bytes)):
        raise ValueError(f"{where} must be a sequence of prompts, got a single {type(items).__name__}; "
                         f"wrap it in a list: [{items!r:.40}]")
    if optional and (items is None or (hasattr(items, "__len__") and len(items) == 0)):
        return []
    if items is None or not hasattr(items, "__len__") or len(items) == 0:
        raise ValueError(f"{where} must be a non-empty sequence of prompts")
    return [as_prompt(p, f"{where}[{i}]") for i, p in enumerate(items)]


def prompt_text(item: Any) -> str:
    """A readable one-string view of any prompt item; never raises (for messages and tables)."""
    try:
        return as_prompt(item).text
    except ValueError:
        return str(item)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render(prompt: Any, tokenizer: Any, *, system_prompt: str | None = None,
           use_chat_template: TemplateChoice = "auto") -> str:
    """The text the model is given for ``prompt``.

    A chat list always goes through the tokenizer's chat template (an error if it
    has none). A string goes through it as one user turn when
    ``use_chat_template`` is True, or ``"auto"`` and the tokenizer has a
    template; otherwise it is used as it is. ``system_prompt`` becomes a system
    turn (unless the chat already has one), or a first line of plain text.
    """
    p = as_prompt(prompt)
    if use_chat_template not in (True, False, "auto"):
        raise ValueError(f"use_chat_template must be True, False or 'auto', got {use_chat_template!r}")
    templated = has_chat_template(tokenizer)
    if use_chat_template is True and not templated:
        raise ValueError(f"use_chat_template=True but the tokenizer ({type(tokenizer).__name__}) has no chat template")
    if not p.is_chat and not (templated and use_chat_template):
        return f"{system_prompt}\n{p.body}" if system_prompt else p.body
    messages = [dict(m) for m in p.body] if p.is_chat else [{"role": "user", "content": p.body}]
    if not templated:
        raise ValueError(f"prompt {p.text!r:.60} is a chat-message list but the tokenizer "
                         f"({type(tokenizer).__name__}) has no chat template")
    if system_prompt and not any(m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode(prompt: Any, tokenizer: Any, *, system_prompt: str | None = None,
           use_chat_template: TemplateChoice = "auto") -> list[int]:
    """Token ids of :func:`render`'s text.

    Templated text already carries the model's special tokens, so it is encoded
    without adding more; plain text gets the tokenizer's own (a BOS token, for
    tokenizers that use one).
    """
    p = as_prompt(prompt)
    text = render(p, tokenizer, system_prompt=system_prompt, use_chat_template=use_chat_template)
    templated = p.is_chat or (has_chat_template(tokenizer) and use_chat_template)
    ids = list(tokenizer(text, add_special_tokens=not templated)["input_ids"])
    if not ids:
        raise ValueError(f"prompt {p.text!r:.60} tokenizes to nothing")
    return ids
