"""System samples for the dashboard: the engine's GPU through NVML, else this process's CPU and RAM.

No NVML, no driver or no GPU is a normal state (one line), never an error; each NVML field that
cannot be read is "N/A" on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil


@dataclass
class Sample:
    gpu: bool
    title: str
    fields: dict[str, str] = field(default_factory=dict)
    note: str = ""


class Telemetry:
    """`pid`: the engine's process when it is not this one (the dashboard of a detached engine)."""

    def __init__(self, device_index: int = 0, pid: int | None = None) -> None:
        self._own = pid is None or pid == psutil.Process().pid
        try:
            self._proc = psutil.Process(pid)
        except psutil.Error:
            self._proc, self._own = psutil.Process(), True
        self._proc.cpu_percent(None)  # the first reading is always 0: prime it
        self._handle = None
        self._nvml = None
        self.reason = ""
        self.detail = ""
        try:
            import pynvml

            pynvml.nvmlInit()
            if pynvml.nvmlDeviceGetCount() == 0:
                self.reason = "NVML found no GPU"
            else:
                self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
                self._nvml = pynvml
        except Exception as exc:  # no library, no driver, no device: all normal on a laptop
            self.reason = "no NVIDIA GPU or NVML here"
            self.detail = f"{type(exc).__name__}: {exc}"

    def sample(self) -> Sample:
        if self._nvml is not None:
            return self._gpu_sample()
        return self.cpu_sample()

    def cpu_sample(self) -> Sample:
        mem = psutil.virtual_memory()
        who = "this process" if self._own else f"engine process {self._proc.pid}"
        try:
            if not self._own and self._proc.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(self._proc.pid)  # ended, not yet reaped: it reads as 0%, 0 MiB
            cpu, rss = self._proc.cpu_percent(None), self._proc.memory_info().rss
        except psutil.Error:
            return Sample(False, f"CPU / RAM ({who})", {"state": "the engine process has ended"}, note=self.reason)
        return Sample(False, f"CPU / RAM ({who})", {
            "cpu": f"{cpu:.0f}% of {psutil.cpu_count()} cores",
            "rss": f"{rss / 2**20:,.0f} MiB",
            "ram": f"{mem.used / 2**30:.1f} / {mem.total / 2**30:.1f} GiB ({mem.percent:.0f}%)",
        }, note=f"{self.reason}: CPU/RAM shown")

    def _gpu_sample(self) -> Sample:
        nv, h = self._nvml, self._handle

        def read(fn, fmt):
            try:
                return fmt(fn())
            except Exception:
                return "N/A"

        name = read(lambda: nv.nvmlDeviceGetName(h), lambda v: v.decode() if isinstance(v, bytes) else str(v))
        return Sample(True, f"GPU {name}", {
            "util": read(lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu, lambda v: f"{v}%"),
            "memory": read(lambda: nv.nvmlDeviceGetMemoryInfo(h),
                           lambda m: f"{m.used / 2**30:.1f} / {m.total / 2**30:.1f} GiB"),
            "temp": read(lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU), lambda v: f"{v} C"),
            "power": read(lambda: nv.nvmlDeviceGetPowerUsage(h), lambda v: f"{v / 1000:.0f} W"),
        })
