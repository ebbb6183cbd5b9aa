"""System samples for the dashboard: the engine's own GPU through NVML, else the engine's CPU and RAM.

The GPU is found by the UUID the engine recorded (meta.json, the run_started event), never by an
index: NVML numbers devices in PCI order and ignores CUDA_VISIBLE_DEVICES, and under MIG the
engine's device is a MIG instance with a UUID of its own. An engine on the CPU shows the CPU panel
even on a GPU box. No NVML, no driver, or a device NVML refuses is a normal state said in one line;
each field that cannot be read is "N/A" with the reason, on its own. Reading NVML can block for
milliseconds: the dashboard calls `sample` from a worker thread, never from the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import psutil


@dataclass
class Sample:
    gpu: bool
    title: str
    fields: dict[str, str] = field(default_factory=dict)
    note: str = ""


def _nvml_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _why(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__)[:60]


class Telemetry:
    """`pid`: the engine's process when it is not this one (the dashboard of a detached engine).
    `nvml`: the NVML binding (pynvml); tests hand in a stand-in."""

    def __init__(self, pid: int | None = None, nvml: ModuleType | Any | None = None) -> None:
        self._own = pid is None or pid == psutil.Process().pid
        try:
            self._proc = psutil.Process(pid)
        except psutil.Error:
            self._proc, self._own = psutil.Process(), True
        self._proc.cpu_percent(None)  # the first reading is always 0: prime it
        self._nvml: Any = nvml
        self._nvml_reason = ""
        self._handles: dict[str, Any] = {}
        if nvml is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception as exc:  # no library, no driver: normal on a laptop
                self._nvml_reason = f"no NVIDIA driver or NVML here ({_why(exc)})"

    # -- the one entry point ------------------------------------------------------------------------
    def sample(self, device: str = "", gpu_uuid: str = "") -> Sample:
        """`device` and `gpu_uuid` as the engine recorded them ("" while it has not said yet)."""
        if not device:
            return self.cpu_sample("waiting for the engine to say which device it runs on")
        if not device.startswith("cuda"):
            return self.cpu_sample("the engine runs on the CPU: its CPU/RAM shown")
        if not gpu_uuid:
            return self.cpu_sample("the run did not record its GPU's UUID (an older run): CPU/RAM shown")
        if self._nvml is None:
            return self.cpu_sample(f"{self._nvml_reason}: CPU/RAM shown")
        handle, reason = self._handle(gpu_uuid)
        if handle is None:
            return self.cpu_sample(f"NVML refused the engine's GPU {gpu_uuid[:18]}... ({reason}): CPU/RAM shown")
        return self._gpu_sample(handle, gpu_uuid)

    def _handle(self, uuid: str) -> tuple[Any, str]:
        if uuid in self._handles:
            return self._handles[uuid], ""
        nv, reason = self._nvml, "not found"
        bare = uuid.split("-", 1)[1] if uuid.startswith(("GPU-", "MIG-")) else uuid
        for candidate in dict.fromkeys((uuid, f"MIG-{bare}", f"GPU-{bare}")):
            try:
                handle = nv.nvmlDeviceGetHandleByUUID(candidate)
            except Exception as exc:  # permission, MIG without access, unknown UUID
                reason = _why(exc)
                continue
            self._handles[uuid] = handle
            return handle, ""
        return None, reason

    # -- samples ------------------------------------------------------------------------------------
    def _engine_cpu(self) -> tuple[str, str] | None:
        """(cpu, rss) of the engine process; None once it has ended."""
        try:
            if not self._own and self._proc.status() == psutil.STATUS_ZOMBIE:
                return None  # ended, not yet reaped: it would read as 0%, 0 MiB
            return (f"{self._proc.cpu_percent(None):.0f}% of {psutil.cpu_count()} cores",
                    f"{self._proc.memory_info().rss / 2**20:,.0f} MiB")
        except psutil.Error:
            return None

    def cpu_sample(self, note: str = "") -> Sample:
        mem = psutil.virtual_memory()
        who = "this process" if self._own else f"engine process {self._proc.pid}"
        engine = self._engine_cpu()
        if engine is None:
            return Sample(False, f"CPU / RAM ({who})", {"state": "the engine process has ended"}, note=note)
        return Sample(False, f"CPU / RAM ({who})", {
            "cpu": engine[0], "rss": engine[1],
            "ram": f"{mem.used / 2**30:.1f} / {mem.total / 2**30:.1f} GiB ({mem.percent:.0f}%)",
        }, note=note)

    def _gpu_sample(self, h: Any, uuid: str) -> Sample:
        nv = self._nvml

        def read(fn, fmt) -> str:
            try:
                return fmt(fn())
            except Exception as exc:  # one field NVML cannot give (MIG has no utilisation, say)
                return f"N/A ({_why(exc)})"

        engine = self._engine_cpu()
        return Sample(True, f"GPU {read(lambda: nv.nvmlDeviceGetName(h), _nvml_text)}", {
            "util": read(lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu, lambda v: f"{v}%"),
            "memory": read(lambda: nv.nvmlDeviceGetMemoryInfo(h),
                           lambda m: f"{m.used / 2**30:.1f} / {m.total / 2**30:.1f} GiB"),
            "engine": read(lambda: self._engine_gpu_memory(h), lambda v: v),
            "temp": read(lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU), lambda v: f"{v} C"),
            "power": read(lambda: nv.nvmlDeviceGetPowerUsage(h), lambda v: f"{v / 1000:.0f} W"),
            "cpu": engine[0] if engine else "the engine process has ended",
        }, note=uuid[:40])

    def _engine_gpu_memory(self, h: Any) -> str:
        """The engine process's own GPU memory, from NVML's list of compute processes."""
        procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(h)
        for p in procs:
            if p.pid == self._proc.pid:
                used = getattr(p, "usedGpuMemory", None)
                if used is None:
                    return "N/A (the driver does not report per-process memory)"
                return f"{used / 2**30:.2f} GiB (pid {p.pid})"
        # In a container NVML lists host PIDs, which differ from the engine's own
        return f"N/A (pid {self._proc.pid} not among NVML's {len(procs)} processes: another PID namespace?)"
