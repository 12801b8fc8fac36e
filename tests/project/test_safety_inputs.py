"""Inputs that used to slip through (issue 16, item 6), one test per probe.

- Rewards near the float maximum (or minimum): exact, overflow-safe standardization
  in NumPy and torch, and a clear error when the weights make the advantages overflow.
- ``eps`` < 0, NaN or inf is refused by every public function that takes one.
- Strings where sequences are expected: a reward ``"101"``, bare-string prompts.
- ``mrgrpo analyze`` on broken files: one line naming the file, exit status 2.
- ``mrgrpo thm3-check`` refuses a run whose memory estimate is over the limit.
- Progress bars: one helper, silent when stderr is not a terminal.
"""
from __future__ import annotations

import ast
import io
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

import mrgrpo.core.advantage as npa
import mrgrpo.core.advantage_torch as tha
from mrgrpo.analysis import analyze
from mrgrpo.cli import main
from mrgrpo.core.stats import sample_correlation

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(16)
W = np.array([1.0, 1.0, 0.5])


def base_rewards(shape=(5, 6, 3)) -> np.ndarray:
    """Ordinary rewards: Gaussian, a binary channel and a group with a constant channel."""
    r = RNG.normal(size=shape)
    r[..., 1] = RNG.integers(0, 2, size=shape[:-1])
    r[0, :, 2] = 0.25
    return r


# --- overflow -----------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [600, 1000, 1021, -600, -900])
@pytest.mark.parametrize("mode", ["na", "an", "single"])
@pytest.mark.parametrize("ddof", [0, 1])
def test_a_power_of_two_scale_changes_no_bit(k, mode, ddof):
    """``A(r * 2**k, eps * 2**k) == A(r, eps)`` bit for bit, far outside the old overflow limits."""
    r = base_rewards()
    scale = 2.0 ** k
    want = npa.compute_advantage_batch(r, W, mode, 1e-8, ddof=ddof)
    got = npa.compute_advantage_batch(r * scale, W, mode, 1e-8 * scale, ddof=ddof)
    np.testing.assert_array_equal(got, want)
    got_t = tha.compute_advantage_batch(torch.tensor(r * scale), W, mode, 1e-8 * scale, ddof=ddof)
    np.testing.assert_allclose(got_t.numpy(), want, rtol=0, atol=1e-12)


def test_aggregate_overflow_is_rescaled_exactly():
    """AN's ``w^T r`` overflows when the rewards are near the float maximum: summed again, rescaled."""
    base = RNG.uniform(-1.9, 1.9, size=(4, 5, 3))
    r = base * 2.0 ** 1023  # |r| up to 1.7e308; w^T r overflows
    want = npa.compute_advantage_batch(base, [1, 1, 1], "an", 1e-8)
    np.testing.assert_array_equal(npa.compute_advantage_batch(r, [1, 1, 1], "an", 1e-8 * 2.0 ** 1023), want)
    got_t = tha.compute_advantage_batch(torch.tensor(r), [1, 1, 1], "an", 1e-8 * 2.0 ** 1023)
    np.testing.assert_allclose(got_t.numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_issue_probes_give_the_right_advantages(backend):
    """1.7e308 gave NaN, 1e300 silently dropped the channel (NA), tiny values with eps = 0 gave inf."""
    f = npa.compute_advantage if backend == "numpy" else \
        (lambda r, w, mode="na", eps=1e-8: tha.compute_advantage(torch.tensor(r), w, mode, eps).numpy())
    big = np.array([[1.7e308, 0.0], [0.0, 1.7e308], [1.0, 1.0]])
    s2 = np.sqrt(2.0)
    for mode in ("na", "an"):
        np.testing.assert_allclose(f(big, [1, 1], mode), [1 / s2, 1 / s2, -s2], rtol=1e-12)
    r300 = np.array([[1e300, 1.0], [-1e300, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(f(r300, [1, 0]), [np.sqrt(1.5), -np.sqrt(1.5), 0.0], rtol=1e-12)
    tiny = np.array([[1e-200, 1.0], [3e-200, 0.0]])
    np.testing.assert_array_equal(f(tiny, [1, 0], eps=0.0), [-1.0, 1.0])


def test_ordinary_rewards_take_the_unscaled_path():
    """Inside the safe window nothing is rescaled: the moments are the plain ones, bit for bit."""
    from mrgrpo.core.kernels import SAFE_MAX, SAFE_MIN, moments

    x = np.concatenate([base_rewards().ravel(), [SAFE_MAX, -SAFE_MAX, SAFE_MIN]]).reshape(-1, 3)
    plain, safe = moments(x, 0), moments(x, 0, rescale=True)
    assert safe.divisor is None
    for a, b in zip(plain, safe):
        np.testing.assert_array_equal(a, b)


def test_group_standardize_correlation_and_batch_rescale_near_the_maximum():
    x = np.array([[1e300, -1e300, 0.0], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(npa.group_standardize(x)[0], [np.sqrt(1.5), -np.sqrt(1.5), 0.0], rtol=1e-12)
    np.testing.assert_array_equal(npa.group_standardize(x)[1], npa.group_standardize([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(tha.group_standardize(torch.tensor(x)).numpy(), npa.group_standardize(x),
                               rtol=0, atol=1e-12)
    r = base_rewards()
    np.testing.assert_array_equal(sample_correlation(r * 2.0 ** 1000, eps=0.0), sample_correlation(r, eps=0.0))
    np.testing.assert_allclose(sample_correlation(r * 2.0 ** 1000), sample_correlation(r, eps=0.0),
                               rtol=0, atol=1e-12)
    a = RNG.normal(size=50)
    np.testing.assert_array_equal(npa.batch_rescale_advantages(a * 2.0 ** 1020, eps=1e-4 * 2.0 ** 1020),
                                  npa.batch_rescale_advantages(a))
    np.testing.assert_allclose(tha.batch_rescale_advantages(torch.tensor(a * 2.0 ** 1020), eps=1e-4 * 2.0 ** 1020)
                               .numpy(), npa.batch_rescale_advantages(a), rtol=0, atol=1e-12)


def test_float32_tensors_are_rescaled_in_their_own_range():
    """float32 overflows at 3.4e38: rewards of 1e30 used to standardize to 0."""
    r = base_rewards().astype(np.float32)
    got = tha.compute_advantage_batch(torch.tensor(r * np.float32(1e30)), W, "na", 0.0)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), npa.compute_advantage_batch(r, W, "na", 0.0), atol=2e-5)


def test_weights_that_overflow_the_advantages_are_a_clear_error():
    r = np.array([[1.0, 1.0], [0.0, 0.0]])
    for f in (npa.compute_advantage, lambda r, w, mode: tha.compute_advantage(torch.tensor(r), w, mode)):
        for mode in ("na", "an"):
            with pytest.raises(ValueError, match="weights"):
                f(r, [1e308, 1e308], mode)


FIELDS = ("realized_na", "realized_an", "predicted_per_prompt", "pooled_C", "influence_na", "influence_an",
          "influence_an_pred", "influence_na_pred", "population_C", "ratio_na", "ratio_an", "floor_sample",
          "floor_fisher", "floor_population")


@pytest.mark.parametrize("k", [1000, -1000])
def test_analyze_near_the_float_limits_equals_the_ordinary_analysis(k):
    """``analyze`` on rewards times ``2**k`` (``eps = 0``): the same numbers; it was NaN or inf."""
    x = RNG.normal(size=(6, 4, 5, 3))
    x[0, 0, :, 1] = 1.0  # a constant channel
    want, got = analyze(x, W, n_boot=50, eps=0.0), analyze(x * 2.0 ** k, W, n_boot=50, eps=0.0)
    for name in FIELDS:
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-14, err_msg=name)
    # the default eps is negligible at this scale: the eps = 0 analysis again, not NaN and not zeros
    near = analyze(x * 1e300, W, n_boot=50)
    for name in FIELDS:
        np.testing.assert_allclose(getattr(near, name), getattr(want, name), rtol=1e-12, err_msg=name)


def test_analyze_with_one_group_far_below_the_others():
    """A group 2**-600 times smaller than the rest: its scale-free statistics are the ordinary ones."""
    x = RNG.normal(size=(4, 3, 5, 3))
    tiny = x.copy()
    tiny[1, 2] *= 2.0 ** -600
    want, got = analyze(x, W, n_boot=50, eps=0.0), analyze(tiny, W, n_boot=50, eps=0.0)
    for name in ("realized_na", "realized_an", "pooled_C", "influence_na", "influence_an", "floor_sample"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-14, err_msg=name)
    assert np.isfinite(got.population_C).all() and np.isfinite(got.floor_population)


# --- eps ----------------------------------------------------------------------------------------

def eps_takers():
    from mrgrpo.analysis.identity import identity_gap, identity_sides
    from mrgrpo.analysis.influence import realized_influence

    r = base_rewards()
    x4 = RNG.normal(size=(3, 2, 4, 3))
    return {
        "analyze": lambda e: analyze(x4, W, n_boot=10, eps=e),
        "compute_advantage_batch": lambda e: npa.compute_advantage_batch(r, W, eps=e),
        "compute_advantage": lambda e: npa.compute_advantage(r[0], W, eps=e),
        "group_standardize": lambda e: npa.group_standardize(r[..., 0], e),
        "batch_rescale_advantages": lambda e: npa.batch_rescale_advantages(r[..., 0], e),
        "sample_correlation": lambda e: sample_correlation(r, e),
        "torch compute_advantage_batch": lambda e: tha.compute_advantage_batch(torch.tensor(r), W, eps=e),
        "torch group_standardize": lambda e: tha.group_standardize(torch.tensor(r[..., 0]), e),
        "torch batch_rescale_advantages": lambda e: tha.batch_rescale_advantages(torch.tensor(r[..., 0]), e),
        "identity_sides": lambda e: identity_sides(r, W, e),
        "identity_gap": lambda e: identity_gap(r, W, e),
        "realized_influence": lambda e: realized_influence(r, r[..., 0], e),
    }


@pytest.mark.parametrize("name", sorted(eps_takers()))
@pytest.mark.parametrize("eps", [-1.0, float("nan"), float("inf")])
def test_every_public_eps_is_checked(name, eps):
    with pytest.raises(ValueError, match="eps"):
        eps_takers()[name](eps)


# --- strings where sequences are expected -------------------------------------------------------

@pytest.mark.parametrize("returned", ["101", b"10", ["1", "0"], {"a": 1.0, "b": 0.0}, {1.0, 0.0}])
def test_a_reward_function_returning_a_string_is_refused(returned):
    from mrgrpo.rewards.base import RewardFunctionError, score_completions

    with pytest.raises(RewardFunctionError, match="not a flat sequence of numbers"):
        score_completions(lambda c, p: returned, ["a"], ["p"], n_channels=2 if len(returned) == 2 else 3)


@pytest.mark.parametrize("which", ["completions", "prompts"])
def test_score_completions_refuses_bare_strings(which):
    from mrgrpo.rewards.base import score_completions

    args = {"completions": ["ab", "cd"], "prompts": ["p", "q"]}
    args[which] = "ab"
    with pytest.raises(ValueError, match=f"{which} must be a sequence"):
        score_completions(lambda c, p: [1.0], args["completions"], args["prompts"])


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from _tiny_lm import build_tiny_lm

    from mrgrpo.lm.loader import load_model

    path = build_tiny_lm(tmp_path_factory.mktemp("lm"))
    return path, *load_model(path)


def bare_prompt_entry_points(tiny_lm):
    from mrgrpo.corpus import MockBackend, run_corpus
    from mrgrpo.corpus.hf import HFBackend
    from mrgrpo.lm.sampling import sample_completions, sample_groups
    from mrgrpo.lm.scores import tokenize_pairs
    from mrgrpo.train import GRPOConfig, GRPOTrainer

    path, model, tok = tiny_lm
    fn = lambda c, p: [1.0, 0.0]  # noqa: E731
    fn.channel_names = ("a", "b")
    q = "What is 1+1?"
    return {
        "run_corpus": lambda: run_corpus(MockBackend(C=np.eye(2), seed=0), q, m_grid=[2], K_seeds=2, seed=0),
        "GRPOTrainer": lambda: GRPOTrainer(GRPOConfig(model=path, weights=(1.0, 1.0)), fn, q),
        "GRPOTrainer eval_prompts": lambda: GRPOTrainer(GRPOConfig(model=path, weights=(1.0, 1.0)), fn, [q],
                                                        eval_prompts=q),
        "HFBackend.generate_groups": lambda: HFBackend(path, fn, progress=False).generate_groups(q, 2, [0]),
        "sample_groups": lambda: sample_groups(model, tok, q, 2, [0], max_new_tokens=2),
        "sample_completions": lambda: sample_completions(model, tok, q, 2, max_new_tokens=2),
        "tokenize_pairs": lambda: tokenize_pairs(tok, q, "2 + 2 ="),
    }


@pytest.mark.parametrize("entry", ["run_corpus", "GRPOTrainer", "GRPOTrainer eval_prompts",
                                   "HFBackend.generate_groups", "sample_groups", "sample_completions",
                                   "tokenize_pairs"])
def test_a_bare_string_of_prompts_is_refused_everywhere(tiny_lm, entry):
    """``prompts="What is 1+1?"`` used to become 12 one-character prompts."""
    with pytest.raises(ValueError, match="single str|must be a sequence"):
        bare_prompt_entry_points(tiny_lm)[entry]()


def test_optional_held_out_prompts_may_be_absent_but_not_a_bare_string():
    from mrgrpo.lm.prompts import as_prompts

    assert as_prompts(None, "eval_prompts", optional=True) == [] and as_prompts([], "eval_prompts", optional=True) == []
    assert [p.text for p in as_prompts(["a", "b"], "eval_prompts", optional=True)] == ["a", "b"]
    with pytest.raises(ValueError, match="single str"):
        as_prompts("What is 1+1?", "eval_prompts", optional=True)
    with pytest.raises(ValueError, match="non-empty"):
        as_prompts([], "prompts")


# --- mrgrpo analyze on broken files -------------------------------------------------------------

def broken_files(tmp: Path) -> dict:
    from mrgrpo.corpus import MockBackend, run_corpus, save_npz, save_parquet

    corpus = run_corpus(MockBackend(C=np.eye(2), seed=0), [("p", "0"), ("q", "0")], m_grid=[4], K_seeds=3, seed=0)
    good_npz, good_pq = save_npz(corpus, tmp / "good.npz"), save_parquet(corpus, tmp / "good.parquet")
    files = {"empty.npz": b"", "notzip.npz": b"hello, not a zip", "empty.parquet": b"",
             "truncated.npz": good_npz.read_bytes()[:300], "truncated.parquet": good_pq.read_bytes()[:300]}
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    corrupt = bytearray(good_npz.read_bytes())
    corrupt[200:400] = bytes(b ^ 0x55 for b in corrupt[200:400])
    (tmp / "corrupt.npz").write_bytes(bytes(corrupt))
    (tmp / "folder.npz").mkdir()
    (tmp / "folder.parquet").mkdir()
    return {p.name: p for p in tmp.iterdir() if not p.name.startswith("good")}


@pytest.mark.parametrize("name", ["empty.npz", "notzip.npz", "truncated.npz", "corrupt.npz", "folder.npz",
                                  "empty.parquet", "truncated.parquet", "folder.parquet"])
def test_analyze_on_a_broken_file_prints_one_line(tmp_path, capsys, name):
    path = broken_files(tmp_path)[name]
    assert main(["analyze", str(path), "--w", "1,1", "--n-boot", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("mrgrpo analyze: error: ") and str(path) in err, err
    assert "Python objects" not in err and "allow_pickle" not in err, err


# --- thm3-check memory limit --------------------------------------------------------------------

def test_thm3_check_refuses_a_run_over_the_memory_limit(capsys):
    assert main(["thm3-check", "--rho", "0.3", "--K", "1000000000"]) == 2
    err = capsys.readouterr().err
    assert "GB of memory" in err and "--max-memory-gb" in err and len(err.strip().splitlines()) == 1
    assert main(["thm3-check", "--rho", "0.3", "--K", "20", "--P", "3", "--n-boot", "10",
                 "--max-memory-gb", "0.01"]) == 2
    assert "0.01 GB limit" in capsys.readouterr().err


def test_thm3_memory_estimate_bounds_the_measured_peak(capsys):
    from mrgrpo.cli.thm3 import estimate_memory_bytes

    P, K, grid = 8, 400, (4, 16, 64)
    tracemalloc.start()
    try:
        assert main(["thm3-check", "--rho", "0.3", "--P", str(P), "--K", str(K), "--m", "4,16,64",
                     "--n-boot", "50", "--no-progress"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    capsys.readouterr()
    est = estimate_memory_bytes(P, K, grid, 3)
    assert peak < est < 4 * peak + (64 << 20), (peak, est)


@pytest.mark.parametrize("kind", [None, [0.3, 0.6]])
def test_thm3_builds_the_same_tensor_as_one_corpus(kind):
    """The prompt-by-prompt tensor of thm3-check is the one ``run_corpus`` on all prompts gives."""
    from mrgrpo.cli.thm3 import mock_tensor
    from mrgrpo.corpus import MockBackend, pack_for_analysis, run_corpus

    backend = MockBackend(C=np.array([[1.0, 0.3], [0.3, 1.0]]), p=kind, seed=3)
    prompts = [(f"mock prompt {i}", "0") for i in range(4)]
    corpus = run_corpus(backend, prompts, m_grid=[4, 8], K_seeds=5, subsample_from_max=True, seed=3)
    x = mock_tensor(backend, prompts, 8, 5, 3)
    for m in (4, 8):
        np.testing.assert_array_equal(x[:, :, :m], pack_for_analysis(corpus, m))


# --- progress bars ------------------------------------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_draw_on_a_terminal_and_stay_quiet_in_a_log():
    from mrgrpo.core.progress import progress_bar

    log, tty = io.StringIO(), FakeTerminal()
    assert list(progress_bar(range(50), file=log, desc="x")) == list(range(50))
    assert log.getvalue() == ""
    list(progress_bar(range(50), file=tty, desc="x"))
    assert "50/50" in tty.getvalue()
    off = FakeTerminal()
    list(progress_bar(range(50), file=off, enabled=False))
    assert off.getvalue() == ""


def test_every_progress_bar_goes_through_the_helper():
    users = []
    for path in sorted((ROOT / "mrgrpo").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "tqdm" for n in names):
                users.append(str(path.relative_to(ROOT)))
    assert sorted(set(users)) == ["mrgrpo/core/progress.py"], users


# ------------------------------------------------------------------ a missing extra names it (issue 21, item 11)
@pytest.mark.parametrize("blocked, statement, package, extra", [
    ("torch", "from mrgrpo import GRPOTrainer", "torch", "llm"),
    ("torch", "from mrgrpo.train import GRPOTrainer", "torch", "llm"),
    ("torch", "import mrgrpo.integrations.trl", "torch", "trl"),
    ("trl", "import mrgrpo.integrations.trl", "trl", "trl"),
    ("verl", "import mrgrpo.integrations.verl", "verl", "verl"),
    ("datasets", "from mrgrpo.integrations.trl_inputs import prompt_dataset; prompt_dataset(['q'])", "datasets", "trl"),
])
def test_a_missing_extra_names_the_extra_to_install(blocked, statement, package, extra):
    # in a fresh process: None in sys.modules is how Python spells "not installed" (ModuleNotFoundError)
    code = (f"import sys\nsys.modules[{blocked!r}] = None\n"
            f"try:\n    {statement}\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("MissingExtraError "), proc.stdout
    assert f"the package {package!r}" in proc.stdout and f"pip install -e '.[{extra}]'" in proc.stdout, proc.stdout


def test_require_tells_a_missing_extra_from_a_bug(monkeypatch):
    from mrgrpo.core.extras import MissingExtraError, require
    from mrgrpo.lm.gguf import MissingExtraError as GGUFMissingExtraError

    monkeypatch.setitem(sys.modules, "verl", None)
    with pytest.raises(MissingExtraError, match=r"^x needs the package 'verl', which is not installed; install "
                                                r"it with pip install -e '\.\[verl\]' \(in a clone of mrgrpo\)$"):
        require("verl", "verl", "x")
    with pytest.raises(ModuleNotFoundError) as info:  # a module of ours that is missing is a bug: raised as is
        require("mrgrpo.no_such_module", "llm")
    assert not isinstance(info.value, MissingExtraError)
    assert require("numpy") is np and GGUFMissingExtraError is MissingExtraError  # one class, the GGUF loader's too
