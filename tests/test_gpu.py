"""The engine on CUDA (skipped without a GPU): a short run, and one checkpoint read on the CPU and
on the GPU giving the same accuracy, gradient amplitudes within one order-of-magnitude bin, and JSMA
outcomes that agree on at least 99% of attacks."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import QUICK
from engine.attacks.jsma import JSMAConfig, jsma
from engine.attacks.outputs import attacked_output
from engine.checkpoints import unpack_state
from engine.metrics import gradient_amplitude
from engine.networks import build_network
from engine.numerics import exact_float32
from engine.presets import load_preset
from engine.record.events import EventType
from engine.sessions.thread_session import ThreadSession

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
ON_CUDA = [s for s in QUICK if not s.startswith("device")] + ["device='cuda'"]


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory):
    s = ThreadSession.create(load_preset("digits", ON_CUDA), tmp_path_factory.mktemp("gpu") / "run")
    s.start()
    assert s.wait(600) and s.state == "finished", s.error
    return s


def test_a_short_digits_run_on_cuda_records_its_gpu(cuda_run):
    started = next(e.data for e in cuda_run.history() if e.type == EventType.RUN_STARTED)
    assert started.device.startswith("cuda") and started.gpu_uuid.startswith(("GPU-", "MIG-"))
    summary = cuda_run.rundir.read_summary()
    assert summary.accuracy["baseline"] > 0.8


def _model(run, phase: str, device: str) -> torch.nn.Module:
    tensors, meta = run.rundir.load_tensors(phase)
    net = build_network("mnist")
    unpack_state(tensors, meta, net, None)
    return net.to(device).eval()


def test_one_checkpoint_on_cpu_and_gpu_agrees(cuda_run):
    x, y = cuda_run.data.x_test, cuda_run.data.y_test
    cpu, gpu = _model(cuda_run, "student", "cpu"), _model(cuda_run, "student", "cuda")
    with torch.no_grad(), exact_float32():
        acc_cpu = (cpu(x).argmax(1) == y).float().mean().item()
        acc_gpu = (gpu(x.cuda()).argmax(1).cpu() == y).float().mean().item()
    assert abs(acc_cpu - acc_gpu) <= 1 / len(y)  # at most one near-tie may flip
    with exact_float32():
        a = gradient_amplitude(cpu, x[:100], 1.0, torch.device("cpu"))["values"]
        b = gradient_amplitude(gpu, x[:100], 1.0, torch.device("cuda"))["values"]
    for u, v in zip(a, b, strict=True):
        if u == 0 or v == 0:
            assert u == v == 0 or max(u, v) < 1e-30
        else:
            assert abs(math.floor(math.log10(u)) - math.floor(math.log10(v))) <= 1
    idx = torch.arange(30).repeat_interleave(9)
    xs, targets = x[idx], (y[idx] + torch.arange(1, 10).repeat(30)) % 10
    with exact_float32():
        r_cpu = jsma(attacked_output(cpu, "softmax_T", 20.0), xs, targets, JSMAConfig())
        r_gpu = jsma(attacked_output(gpu, "softmax_T", 20.0), xs, targets, JSMAConfig(batch_size=len(xs),
                                                                                      pair_chunk=1 << 26))
    assert (r_cpu.success == r_gpu.success).float().mean().item() >= 0.99


def test_the_compiled_step_runs_on_cuda_and_matches_the_plain_one(tmp_path):
    from engine.presets import TrainingConfig
    from engine.training import make_optimizer
    from engine.training_step import TrainStep

    dev = torch.device("cuda")
    steps = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        cfg = TrainingConfig(compile=compile_)
        net = build_network("mnist", dropout=0.0).to(dev)
        steps.append(TrainStep(net, make_optimizer(net, cfg), cfg, dev, lambda t: pytest.fail(t)))
    g = torch.Generator().manual_seed(0)
    for i in range(6):
        xb = torch.rand(128, 1, 28, 28, generator=g).to(dev)
        yb = torch.randint(0, 10, (128,), generator=g).to(dev)
        t = 100.0 if i < 3 else 20.0
        a, b = (s(xb, yb, t) for s in steps)
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5)
