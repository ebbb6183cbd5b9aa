"""The system panel follows the engine's own device: its GPU found by UUID (not NVML index 0), each
field NVML cannot read said as N/A with the reason, and an engine on the CPU shown as such.

NVML is replaced by a stand-in here (no GPU on CI): it answers the calls the panel makes the way
the real binding does (handles by UUID, errors as exceptions), so the lookup and the per-field
rules are what is tested, not any number a GPU would report."""

from __future__ import annotations

import os
from types import SimpleNamespace

from engine.sessions.telemetry import Telemetry


class NVMLError(Exception):
    pass


class FakeNVML:
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, devices: dict[str, dict], refuse: str = "") -> None:
        self.devices, self.refuse = devices, refuse

    def nvmlDeviceGetHandleByUUID(self, uuid):  # noqa: N802 - NVML's own names
        if self.refuse:
            raise NVMLError(self.refuse)
        if uuid not in self.devices:
            raise NVMLError("Not Found")
        return uuid

    def _get(self, h, key):
        value = self.devices[h][key]
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlDeviceGetName(self, h):  # noqa: N802
        return self._get(h, "name")

    def nvmlDeviceGetUtilizationRates(self, h):  # noqa: N802
        return SimpleNamespace(gpu=self._get(h, "util"))

    def nvmlDeviceGetMemoryInfo(self, h):  # noqa: N802
        return SimpleNamespace(used=self._get(h, "used"), total=self._get(h, "total"))

    def nvmlDeviceGetTemperature(self, h, _sensor):  # noqa: N802
        return self._get(h, "temp")

    def nvmlDeviceGetPowerUsage(self, h):  # noqa: N802
        return self._get(h, "power")

    def nvmlDeviceGetComputeRunningProcesses(self, h):  # noqa: N802
        return self._get(h, "procs")


def _device(name: str, procs: list, **over) -> dict:
    return {"name": name, "util": 40, "used": 2 * 2**30, "total": 80 * 2**30, "temp": 51, "power": 180_000,
            "procs": procs, **over}


ME = os.getpid()
TWO = {"GPU-aaaa": _device("GPU zero", []),
       "GPU-bbbb": _device("GPU one", [SimpleNamespace(pid=ME, usedGpuMemory=3 * 2**30)], util=97)}


def test_the_panel_finds_the_engines_gpu_by_uuid_not_index_zero():
    s = Telemetry(nvml=FakeNVML(TWO)).sample("cuda:GPU one", "GPU-bbbb")
    assert s.gpu and s.title == "GPU GPU one"
    assert s.fields["util"] == "97%" and s.fields["engine"].startswith("3.00 GiB")
    assert s.fields["memory"] == "2.0 / 80.0 GiB" and s.fields["power"] == "180 W"


def test_an_engine_on_the_cpu_shows_the_cpu_panel_on_a_gpu_box():
    s = Telemetry(nvml=FakeNVML(TWO)).sample("cpu (2 threads)", "")
    assert not s.gpu and "runs on the CPU" in s.note and "cpu" in s.fields


def test_fields_nvml_cannot_read_say_na_and_why():
    mig = {"MIG-cccc": _device("H100 MIG 1g.10gb", [SimpleNamespace(pid=ME + 1, usedGpuMemory=1)],
                               util=NVMLError("Not Supported"), power=NVMLError("Not Supported"))}
    s = Telemetry(nvml=FakeNVML(mig)).sample("cuda:H100", "MIG-cccc")
    assert s.fields["util"] == "N/A (Not Supported)" and s.fields["power"] == "N/A (Not Supported)"
    assert s.fields["engine"].startswith(f"N/A (pid {ME} not among NVML's 1 processes")
    assert s.fields["temp"] == "51 C"


def test_a_device_nvml_refuses_is_named_with_the_reason():
    s = Telemetry(nvml=FakeNVML(TWO, refuse="Insufficient Permissions")).sample("cuda:x", "GPU-bbbb")
    assert not s.gpu and "NVML refused the engine's GPU" in s.note and "Insufficient Permissions" in s.note


RECORDED = __import__("pathlib").Path(__file__).parent / "fixtures" / "nvml-sample.json"


@__import__("pytest").mark.skipif(not RECORDED.exists(), reason="no NVML sample recorded on a real GPU yet "
                                  "(bench/gpu.py --record-nvml tests/fixtures/nvml-sample.json on a GPU box)")
def test_the_panel_shows_a_sample_recorded_on_a_real_gpu():
    import json

    rec = json.loads(RECORDED.read_text())
    errors = {k: NVMLError(v["error"]) for k, v in rec.items() if isinstance(v, dict) and "error" in v}
    device = {**_device(rec["name"], [SimpleNamespace(pid=ME, usedGpuMemory=p["usedGpuMemory"])
                                      for p in rec["procs"] if p["pid"] == rec["pid"]]),
              **{k: rec[k] for k in ("util", "used", "total", "temp", "power")}, **errors}
    s = Telemetry(nvml=FakeNVML({rec["uuid"]: device})).sample("cuda:" + rec["name"], rec["uuid"])
    assert s.gpu and s.title == f"GPU {rec['name']}"
    for key in ("util", "temp", "power"):
        assert ("N/A" in s.fields[key]) == (key in errors)
