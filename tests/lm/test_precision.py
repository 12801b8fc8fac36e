"""``mrgrpo.lm.precision``: the one dtype / autocast rule both engines and the evaluation use."""
from __future__ import annotations

import json

import pytest
import torch

import mrgrpo.lm.precision as precision_mod
from mrgrpo.lm.models import TINY_MATH_DIR
from mrgrpo.lm.precision import DTYPES, gains_from_bf16, precision
from mrgrpo.train.config import DTYPES as CONFIG_DTYPES
from mrgrpo.train.config import GRPOConfig


@pytest.fixture
def a_gpu(monkeypatch):
    """As if a CUDA GPU were visible (nothing here touches it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_the_rule_accepts_exactly_the_configs_choices():
    assert DTYPES == CONFIG_DTYPES
    with pytest.raises(ValueError, match="dtype must be one of"):
        precision("fp8", "cpu")


@pytest.fixture(params=[True, False], ids=["native-bf16", "no-bf16"])
def cpu_bf16(request, monkeypatch):
    """As if the CPU had (or lacked) bfloat16 matrix instructions."""
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: request.param)
    return request.param


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("lora", [True, False])
def test_on_the_cpu_an_explicit_dtype_wins(cpu_bf16, dtype, lora):
    compute = getattr(torch, dtype)
    for device in ("cpu", torch.device("cpu")) + (() if torch.cuda.is_available() else ("auto",)):
        for model in (None, "tiny-math", "smollm2-135m-instruct"):
            p = precision(dtype, device, lora=lora, model=model)
            assert (p.on_gpu, p.device_type, p.compute) == (False, "cpu", compute)
            assert p.weights == (compute if lora else torch.float32)  # float32 masters for full fine-tuning
            assert p.autocasts == (dtype != "float32")
            assert p.trl_flags == {"bf16": dtype == "bfloat16", "fp16": dtype == "float16"}
            with p.autocast():
                assert torch.is_autocast_enabled("cpu") == p.autocasts
                if p.autocasts:
                    assert torch.get_autocast_dtype("cpu") == compute


def test_auto_on_the_cpu_is_bf16_only_with_native_instructions_and_a_large_model(cpu_bf16, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    (small / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64}))
    large = tmp_path / "large"
    large.mkdir()
    (large / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 576}))
    for model, gains in [("tiny-math", False), (str(TINY_MATH_DIR), False), (small, False),
                         ("smollm2-135m-instruct", True), (large, True), ("Org/hub-model", True), (None, True)]:
        assert gains_from_bf16(model) == gains, model
        p = precision("auto", "cpu", lora=True, model=model)
        want = torch.bfloat16 if cpu_bf16 and gains else torch.float32
        assert (p.compute, p.weights, p.trl_flags["bf16"]) == (want, want, want == torch.bfloat16), model


def test_the_cpu_probe_agrees_with_the_cpu_flags():
    flags = set()
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.split(":")[0].strip().lower() in ("flags", "features"):
                flags.update(line.split(":", 1)[1].split())
    assert precision_mod.cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


@pytest.mark.parametrize("dtype, lora, compute, weights, flags", [
    ("auto", True, torch.bfloat16, torch.bfloat16, {"bf16": True, "fp16": False}),
    ("auto", False, torch.bfloat16, torch.float32, {"bf16": True, "fp16": False}),  # fp32 master weights
    ("bfloat16", True, torch.bfloat16, torch.bfloat16, {"bf16": True, "fp16": False}),
    ("float16", True, torch.float16, torch.float16, {"bf16": False, "fp16": True}),
    ("float16", False, torch.float16, torch.float32, {"bf16": False, "fp16": True}),
    ("float32", True, torch.float32, torch.float32, {"bf16": False, "fp16": False}),
])
def test_on_a_gpu(a_gpu, dtype, lora, compute, weights, flags):
    for device in ("auto", "cuda", "cuda:1", torch.device("cuda:0")):
        p = precision(dtype, device, lora=lora)
        assert (p.on_gpu, p.compute, p.weights) == (True, compute, weights)
        assert p.autocasts == (compute != torch.float32) and p.trl_flags == flags


def test_the_trl_engine_asks_the_same_rule(a_gpu):
    from mrgrpo.train.engines.trl_engine import trl_arguments

    for dtype in DTYPES:
        args = trl_arguments(GRPOConfig.tiny(engine="trl", dtype=dtype), "unused")
        want = precision(dtype, "auto").trl_flags
        assert (args["bf16"], args["fp16"], args["dataloader_pin_memory"]) == (want["bf16"], want["fp16"], True)
    args = trl_arguments(GRPOConfig.tiny(engine="trl", device="cpu", dtype="bfloat16"), "unused")
    assert (args["bf16"], args["fp16"], args["use_cpu"], args["dataloader_pin_memory"]) == (True, False, True, False)


@pytest.mark.parametrize("model, gains", [("tiny-math", False), ("smollm2-135m-instruct", True)])
def test_the_trl_engine_on_the_cpu_follows_auto(cpu_bf16, model, gains):
    from mrgrpo.train.engines.trl_engine import engine_precision, trl_arguments

    cfg = GRPOConfig.tiny(engine="trl", device="cpu", model=model)
    want = cpu_bf16 and gains
    assert trl_arguments(cfg, "unused")["bf16"] == want
    assert engine_precision(cfg).weights == (torch.bfloat16 if want else torch.float32)


def test_the_trl_engine_with_device_auto_and_no_gpu_runs_on_the_cpu(monkeypatch):
    from trl import GRPOConfig as TRLConfig

    from mrgrpo.train.engines.trl_engine import trl_arguments

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = trl_arguments(GRPOConfig.tiny(engine="trl", device="auto", dtype="bfloat16"), "unused")
    assert args["use_cpu"] and args["bf16"] and not args["dataloader_pin_memory"]
    assert TRLConfig(**args).bf16  # transformers refuses bf16 without a GPU unless use_cpu is set
