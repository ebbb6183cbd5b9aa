"""Presets: every shipped one validates; bad input is one line naming the key and the fix."""

from __future__ import annotations

import math

import pytest

from conftest import assert_one_line_error, cli
from engine.errors import PresetError
from engine.presets import available_presets, load_preset


def test_shipped_presets_validate_and_describe_themselves():
    names = set(available_presets())
    assert {"digits", "mnist", "mnist-t10k", "fashion-mnist", "cifar10"} <= names
    for name in names:
        preset = load_preset(name)
        assert preset.name == name and preset.description
    assert "8,000" in load_preset("mnist-t10k").description
    assert load_preset("cifar10").training.lr_decay == 0.5


def test_set_overrides_any_field_with_typed_values():
    p = load_preset("digits", ["distillation.temperature=20", "training.optimizer='adam'", "attack.samples=5",
                               "data.split=[100, 50]"])
    assert p.distillation.temperature == 20.0
    assert p.training.optimizer == "adam"
    assert p.attack.samples == 5 and p.data.split == (100, 50)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "'hot'"])
def test_impossible_temperatures_are_rejected(value):
    with pytest.raises(PresetError) as err:
        load_preset("digits", [f"distillation.temperature={value}"])
    assert "distillation.temperature" in str(err.value)
    assert "allowed: a finite number > 0" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_key_names_the_key(tmp_path):
    with pytest.raises(PresetError, match="unknown key 'training.epoch'"):
        load_preset("digits", ["training.epoch=3"])


def test_epochs_below_one_rejected():
    with pytest.raises(PresetError, match="training.epochs"):
        load_preset("digits", ["training.epochs=0"])


def test_preset_round_trips_through_toml():
    from engine.presets import preset_from_toml

    p = load_preset("cifar10")
    assert preset_from_toml(p.to_toml()) == p
    assert math.isclose(preset_from_toml(p.to_toml()).distillation.temperature, 100.0)


# -- the command line: one line on stderr, exit 2, and no run directory left behind ----------
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_cli_rejects_impossible_temperature(tmp_path, value):
    run_dir = tmp_path / "run"
    proc = cli("run", "digits", "--run-dir", str(run_dir), "--set", f"distillation.temperature={value}")
    assert_one_line_error(proc, "distillation.temperature")
    assert not run_dir.exists()


def test_cli_rejects_malformed_toml(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[training\nepochs = 3\n')
    proc = cli("run", str(bad), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(proc, "not valid TOML", "bad.toml")
    assert not (tmp_path / "run").exists()


def test_cli_rejects_unknown_key_in_file(tmp_path):
    bad = tmp_path / "typo.toml"
    bad.write_text('name = "typo"\n[training]\nepocs = 3\n')
    proc = cli("run", str(bad), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(proc, "unknown key 'training.epocs'")


def test_cli_rejects_unknown_preset_name():
    assert_one_line_error(cli("run", "imagenet"), "unknown preset 'imagenet'", "digits")


def test_presets_command_lists_descriptions():
    proc = cli("presets")
    assert proc.returncode == 0
    assert "mnist-t10k" in proc.stdout and "8,000" in proc.stdout


def test_attacking_a_model_no_phase_trains_is_refused_before_any_training(tmp_path):
    """The documented own-model recipe (phases = ["baseline"]) with the default attack.models: said at
    `check`, and `run` writes nothing, instead of training and stopping at the attacks."""
    with pytest.raises(PresetError) as err:
        load_preset("digits", ["distillation.phases=['baseline']", "attack.enabled=true"])
    said = str(err.value)
    assert "attack.models" in said and "student" in said and "attack.models = ['baseline']" in said
    assert "\n" not in said and "(top level)" not in said
    load_preset("digits", ["distillation.phases=['baseline']", "attack.models=['baseline']"])  # the fix works
    load_preset("digits", ["distillation.phases=['baseline']", "attack.enabled=false"])  # nothing attacked: fine
    proc = cli("run", "digits", "--run-dir", str(tmp_path / "run"), "--set", "distillation.phases=['baseline']",
               "--set", "device='cpu'")
    assert_one_line_error(proc, "attack.models")
    assert not (tmp_path / "run").exists()
