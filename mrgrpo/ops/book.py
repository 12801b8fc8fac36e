"""Rerun a chapter of the book with new parameters (papermill) and store the result.

A chapter is a MyST-markdown jupytext notebook (``chapters/<name>.md``) with one
cell tagged ``parameters``. :func:`run_chapter` converts it to ``.ipynb``,
executes it with papermill in ``chapters/`` (so relative paths behave as in the
book build), and writes the executed notebook under ``chapters/runs/``. The book
renders those stored runs without executing them again
(``execute.exclude_patterns`` in ``_config.yml``).

A stored run is a second copy of a chapter, so its cross-reference labels
(equation labels, ``(target)=`` anchors, ``prf`` labels) would collide with the
chapter's own. The runner prefixes every label the markdown cells define, and the
citations of those labels, with the run's name (a citation of another page's label is
left pointing there) and puts a short header cell on top that says which
parameters produced the run and how to repeat it.

What a run writes to stderr (progress bars, one-off notices such as a model cache
being built) is log, not result: :func:`move_stderr_to_metadata` takes it out of the
rendered outputs and keeps it, each progress bar reduced to its last frame, in the
notebook's ``metadata.mrgrpo.run.stderr``.
"""
from __future__ import annotations

import datetime
import keyword
import math
import re
import tempfile
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, Optional

from mrgrpo.core.files import atomic_path
from mrgrpo.ops.book_params import (check_value, cli_value, parameter_defaults, parameter_names, parse_value,
                                     repeat_command)

__all__ = [
    "resolve_chapter",
    "parameter_names",
    "parameter_defaults",
    "parse_value",
    "check_value",
    "cli_value",
    "default_run_name",
    "repeat_command",
    "defined_labels",
    "relabel_markdown",
    "move_stderr_to_metadata",
    "run_chapter",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def resolve_chapter(chapter: str | Path, root: str | Path = ".") -> Path:
    """Return the path of a chapter given ``thm3``, ``thm3.md`` or ``chapters/thm3.md``.

    Raises
    ------
    FileNotFoundError
        when no such chapter exists (the message lists the available ones).
    """
    root = Path(root)
    candidates = []
    p = Path(chapter)
    candidates.append(p if p.is_absolute() else root / p)
    stem = p.name[:-3] if p.name.endswith(".md") else p.name
    candidates.append(root / "chapters" / f"{stem}.md")
    for c in candidates:
        if c.is_file() and c.suffix == ".md":
            return c.resolve()
    available = sorted(q.stem for q in (root / "chapters").glob("*.md"))
    raise FileNotFoundError(
        f"no chapter {str(chapter)!r} under {root / 'chapters'}; available: {', '.join(available) or 'none'}"
    )


def _slug(value: Any) -> str:
    s = str(value).replace("/", "-")
    s = re.sub(r"[^A-Za-z0-9.]+", "-", s).strip("-")
    return s[:40] or "x"


def default_run_name(stem: str, parameters: Mapping[str, Any]) -> str:
    """``<chapter>`` or ``<chapter>__<name>-<value>_...`` from the parameters given."""
    if not parameters:
        return stem
    parts = [f"{k}-{_slug(v)}" for k, v in parameters.items()]
    return f"{stem}__" + "_".join(parts)


# (target)= anchors, ":label: x" directive options, and the roles that cite them.
_ANCHOR_RE = re.compile(r"^\((?P<name>[^)\s]+)\)=\s*$", re.MULTILINE)
_OPTION_RE = re.compile(r"^(?P<indent>\s*):label:\s*(?P<name>\S+)\s*$", re.MULTILINE)
_ROLE_RE = re.compile(r"\{(?P<role>eq|ref|numref|prf:ref|doc)\}`(?P<body>[^`]+)`")


def defined_labels(texts: Iterable[str]) -> set[str]:
    """The labels that MyST ``texts`` define: ``(name)=`` anchors and ``:label: name`` options."""
    found: set[str] = set()
    for text in texts:
        found |= {m["name"] for m in _ANCHOR_RE.finditer(text)} | {m["name"] for m in _OPTION_RE.finditer(text)}
    return found


def relabel_markdown(text: str, prefix: str, defined: Optional[Collection[str]] = None) -> str:
    """Prefix the labels defined in MyST ``text``, and the citations of them, with ``prefix``.

    Handles ``(name)=`` anchors, ``:label: name`` directive options and the roles
    ``{eq}``, ``{ref}``, ``{numref}``, ``{prf:ref}``. ``defined`` names the labels the
    stored notebook itself defines (:func:`defined_labels` over all its cells; default: those
    of ``text``): a citation of any other label points into another page of the book and is
    left as it is. ``{doc}`` links are left alone (a stored run lives one folder down, so
    they are made relative to it).
    """
    own = defined_labels([text]) if defined is None else set(defined)
    text = _ANCHOR_RE.sub(lambda m: f"({prefix}{m['name']})=", text)
    text = _OPTION_RE.sub(lambda m: f"{m['indent']}:label: {prefix}{m['name']}", text)

    def role(m: re.Match) -> str:
        body = m["body"]
        if m["role"] == "doc":
            return m.group(0) if body.startswith(("/", "../")) else f"{{doc}}`../{body}`"
        explicit = re.match(r"^(?P<title>.*)<(?P<target>[^>]+)>$", body, re.DOTALL)
        if explicit:
            if explicit["target"] not in own:
                return m.group(0)
            return f"{{{m['role']}}}`{explicit['title']}<{prefix}{explicit['target']}>`"
        return f"{{{m['role']}}}`{prefix}{body}`" if body in own else m.group(0)

    return _ROLE_RE.sub(role, text)


def _header_cell(nbformat, title: str, stem: str, parameters: Mapping[str, Any], command: str):
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(f"| `{k}` | `{v!r}`{' (unset)' if v is None else ''} |" for k, v in parameters.items()) \
        or "| (defaults) | |"
    src = (
        f"# Stored run: {title}\n\n"
        f"This page is an executed copy of the chapter {{doc}}`../{stem}`, stored by "
        f"`mrgrpo book run` on {when} and rendered as is (the book build does not execute it "
        f"again). Parameters that differ from the chapter's defaults:\n\n"
        f"| parameter | value |\n|---|---|\n{rows}\n\n"
        f"Repeat it with\n\n```bash\n{command}\n```\n"
    )
    return nbformat.v4.new_markdown_cell(src)


def _last_frames(text: str) -> str:
    """Each line as a terminal would leave it: a progress bar's ``\\r`` frames reduced to the last one."""
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return "\n".join(line for line in lines if line.strip())


def move_stderr_to_metadata(nb: Any) -> int:
    """Move every stderr stream output of ``nb`` into ``nb.metadata["mrgrpo"]["run"]["stderr"]``.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        An executed notebook (version 4), changed in place.

    Returns
    -------
    int
        How many stderr outputs were moved. The log keeps one entry per code cell that
        wrote to stderr, ``{"cell": index, "text": ...}``, with consecutive outputs joined
        and progress-bar frames reduced to the last.
    """
    log = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        kept, moved = [], []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                moved.append(output.get("text", ""))
            else:
                kept.append(output)
        if moved:
            cell["outputs"] = kept
            log.append({"cell": index, "text": _last_frames("".join(moved)), "outputs": len(moved)})
    if log:
        run = nb.metadata.setdefault("mrgrpo", {}).setdefault("run", {})
        run["stderr"] = run.get("stderr", []) + [{"cell": e["cell"], "text": e["text"]} for e in log]
    return sum(e["outputs"] for e in log)


def _check_timeout(timeout: float | None) -> int | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return math.ceil(timeout)


def _check_kernel(kernel_name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(kernel_name)
    except NoSuchKernel:
        names = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise ValueError(f"no Jupyter kernel named {kernel_name!r}; installed kernels: {names}") from None


def _drop_title(text: str) -> str:
    # The header cell carries the page title, so the chapter's own H1 goes.
    return re.sub(r"^# .*\n?", "", text, count=1, flags=re.MULTILINE).lstrip("\n")


def run_chapter(
    chapter: str | Path,
    parameters: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    *,
    root: str | Path = ".",
    kernel_name: str = "python3",
    timeout: float | None = None,
    progress_bar: bool = True,
    allow_unknown: bool = False,
    overwrite: bool = False,
) -> Path:
    """Execute a chapter with papermill and store the executed notebook.

    Parameters
    ----------
    chapter
        ``thm3``, ``thm3.md`` or a path to a chapter's ``.md`` file.
    parameters
        Overrides for names in the chapter's ``parameters`` cell. Unknown names
        raise ``ValueError`` unless ``allow_unknown`` (a typo would otherwise run
        the chapter silently with its defaults).
    out
        Where to write the executed ``.ipynb``; default
        ``<root>/chapters/runs/<chapter>__<param>-<value>....ipynb``.
    root
        The book's root folder (holding ``chapters/``).
    kernel_name
        An installed Jupyter kernel (checked before anything runs).
    timeout
        Per-cell timeout in seconds, positive and finite (``None``: no limit); a
        fraction of a second is rounded up (papermill counts whole seconds).
    overwrite
        Replace a stored run at ``out`` (refused otherwise, before anything runs).

    Returns
    -------
    Path of the stored notebook.

    Raises
    ------
    ValueError
        Before anything runs: a value that is not JSON-representable (see
        :func:`check_value`), a name that is not an identifier, an unknown parameter,
        a timeout that is not a positive finite number, a kernel that is not installed,
        an output path that is taken or misplaced.
    """
    import jupytext
    import nbformat
    import papermill as pm

    given_out = out
    root = Path(root).resolve()
    src = resolve_chapter(chapter, root)
    stem = src.stem
    parameters = dict(parameters or {})
    for k in parameters:
        if not isinstance(k, str) or not k.isidentifier() or keyword.iskeyword(k):
            raise ValueError(f"parameter name {k!r} is not a Python identifier")
    parameters = {k: check_value(v, k) for k, v in parameters.items()}
    timeout = _check_timeout(timeout)
    _check_kernel(kernel_name)
    nb = jupytext.read(src)
    known = parameter_names(nb)
    unknown = [k for k in parameters if k not in known]
    if unknown and not allow_unknown:
        raise ValueError(
            f"chapter {stem!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(known)}"
        )

    if out is None:
        out = root / "chapters" / "runs" / f"{default_run_name(stem, parameters)}.ipynb"
    out = Path(out)
    if not out.is_absolute():
        out = (Path.cwd() / out).resolve()
    if out.suffix != ".ipynb":
        raise ValueError(f"--out must end in .ipynb, got {out.name!r}")
    if out.parent == src.parent and out.stem == stem:
        raise ValueError(f"{out} would sit beside {src.name}: Sphinx would see one page twice; "
                         f"store runs under chapters/runs/")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} holds a stored run; pass overwrite=True (--overwrite) to replace it")
    run_name = out.stem
    if not _NAME_RE.match(run_name):
        raise ValueError(f"run name {run_name!r} must be letters, digits, '.', '_' or '-'")
    out.parent.mkdir(parents=True, exist_ok=True)

    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    with tempfile.TemporaryDirectory(prefix="mrgrpo-book-") as tmp:
        tmp_in = Path(tmp) / f"{stem}.ipynb"
        tmp_out = Path(tmp) / f"{run_name}.ipynb"
        nbformat.write(nb, tmp_in)
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        from papermill.exceptions import PapermillExecutionError

        try:
            pm.execute_notebook(
                str(tmp_in),
                str(tmp_out),
                parameters=parameters,
                cwd=str(src.parent),
                kernel_name=kernel_name,
                progress_bar=progress_bar,
                execution_timeout=timeout,
            )
        except (PapermillExecutionError, CellTimeoutError, DeadKernelError):
            # A chapter that failed while running must not land in chapters/runs/ (the
            # book would render it); keep it for inspection under _build/ instead. Any
            # other error is ours or the set-up's, and leaves nothing behind.
            if tmp_out.exists():
                failed = root / "_build" / "failed-runs" / tmp_out.name
                failed.parent.mkdir(parents=True, exist_ok=True)
                failed.write_bytes(tmp_out.read_bytes())
            raise
        executed = nbformat.read(tmp_out, as_version=4)

    title, title_cell = stem, None
    for cell in executed.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^# (.+)$", cell.source, re.MULTILINE)
            if m:
                title, title_cell = m.group(1).strip(), cell
                break
    prefix = f"{run_name}-"
    own = defined_labels(cell.source for cell in executed.cells if cell.cell_type == "markdown")
    for cell in executed.cells:
        if cell.cell_type == "markdown":
            cell.source = relabel_markdown(cell.source, prefix, own)
    if title_cell is not None:
        title_cell.source = _drop_title(title_cell.source)
    command = repeat_command(stem, parameters, given_out, kernel_name)
    executed.cells.insert(0, _header_cell(nbformat, title, stem, parameters, command))
    executed.metadata.setdefault("mrgrpo", {})["run"] = {
        "chapter": f"chapters/{stem}.md",
        "parameters": {k: repr(v) for k, v in parameters.items()},
    }
    move_stderr_to_metadata(executed)
    with atomic_path(out) as tmp:
        nbformat.write(executed, str(tmp))
    return out
