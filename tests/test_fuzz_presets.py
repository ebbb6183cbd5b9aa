"""Property-based fuzzing of preset files and --set values: every input is either accepted or
refused with exit code 2 and one readable line; never a traceback."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from engine.cli import main

CASES = 2000
DIGITS = (ROOT / "presets" / "digits.toml").read_text()
KEYS = ["name", "seed", "device", "threads", "data.dataset", "data.split", "data.train_limit", "training.lr",
        "training.epochs", "training.batch_size", "training.loss_scale", "training.optimizer", "training",
        "distillation.temperature", "distillation.phases", "attack.samples", "attack.theta", "attack.outputs",
        "attack.upsilon", "attack.no_pair", "network.arch", "network.dropout", "nope.nothing", "data.root.deeper"]
RAW_VALUES = ["nan", "inf", "-inf", "0", "-1", "1e400", "10**9", "'sgd'", "[1, 2]", "['baseline']", "{a = 1}",
              "1979-05-27", "true", "\"\"", "[[[[[[[[[[1]]]]]]]]]]", "'x' * 5", "[" * 2000, "\\u0000"]

scalars = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.floats(), st.booleans(),
                    st.text(max_size=40))
toml_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
override = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), st.sampled_from(RAW_VALUES) | st.text(max_size=30)),
    st.text(max_size=60),
    st.builds(lambda k: f"{k}=" + "9" * 5000, st.sampled_from(KEYS)),  # a value far too long to quote whole
)
mutated = st.builds(lambda at, junk: (DIGITS[:at] + junk + DIGITS[at:]).encode("utf-8", "surrogatepass"),
                    st.integers(min_value=0, max_value=len(DIGITS)), st.text(max_size=30))
generated = st.builds(lambda d: tomli_w.dumps(d).encode(),
                      st.dictionaries(st.sampled_from(["name", "seed", "device", "training", "data", "attack",
                                                       "distillation", "network", "x" * 300]), toml_values,
                                      max_size=5))
preset_files = st.one_of(mutated, generated, st.binary(max_size=200), st.just(b"a = " + b"[" * 5000))


@pytest.mark.slow
def test_presets_and_overrides_never_raise_a_traceback():
    seen = {"cases": 0, "accepted": 0, "refused": 0}
    folder = Path(tempfile.mkdtemp(prefix="defdistill-fuzz-"))

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(preset_files, st.lists(override, max_size=3))
    def one(content: bytes, overrides: list[str]) -> None:
        seen["cases"] += 1
        path = folder / "fuzzed.toml"
        path.write_bytes(content)
        args = ["check", str(path)]
        args += [f"--set={o}" for o in overrides]  # the = form: a value may start with "-"
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)  # any other exception fails the test: a traceback for the user
            except SystemExit as exc:  # argparse's own refusals
                code = exc.code
        if code == 0:
            seen["accepted"] += 1
            return
        seen["refused"] += 1
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        assert code == 2, (code, err.getvalue())
        assert len(lines) == 1, err.getvalue()
        assert lines[0].startswith("defdistill-engine: error: ") and len(lines[0]) < 600, lines[0][:700]

    one()
    print(f"preset fuzz: {seen['cases']} cases, {seen['accepted']} accepted, {seen['refused']} refused, 0 tracebacks")
    assert seen["cases"] >= CASES and seen["accepted"] > 0 and seen["refused"] > 0
