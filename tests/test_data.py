"""Datasets: digits drawn like MNIST; the real torchvision path on the shared copies; offline errors."""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error, cli
from engine.data import load_dataset
from engine.errors import DatasetError
from engine.presets import DataConfig


def test_digits_is_28x28_in_unit_range_with_fixed_split():
    a = load_dataset(DataConfig(dataset="digits"))
    b = load_dataset(DataConfig(dataset="digits"))
    assert a.x_train.shape == (1437, 1, 28, 28) and a.x_test.shape == (360, 1, 28, 28)
    assert float(a.x_train.min()) >= 0.0 and float(a.x_train.max()) == 1.0
    # MNIST-like: the glyph sits in the centre, the border is background
    assert float(a.x_train[:, :, :4].abs().sum()) == 0.0
    assert (a.y_test == b.y_test).all() and set(a.y_test.tolist()) == set(range(10))


def test_fashion_mnist_through_torchvision_in_place(shared_data):
    split = load_dataset(DataConfig(dataset="fashion-mnist"), root=shared_data)
    assert split.x_train.shape == (60000, 1, 28, 28) and split.x_test.shape == (10000, 1, 28, 28)
    assert float(split.x_train.max()) == 1.0
    # Fashion-MNIST's first training label is 9 (ankle boot), as published.
    assert int(split.y_train[0]) == 9
    # nothing was written next to the published files
    assert sorted(p.name for p in (shared_data / "FashionMNIST" / "raw").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_mnist_t10k_split_is_8000_2000(shared_data):
    split = load_dataset(DataConfig(dataset="mnist-t10k"), root=shared_data)
    assert len(split.y_train) == 8000 and len(split.y_test) == 2000
    assert "not the paper's" in split.note


def test_missing_dataset_names_folder_and_files(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset(DataConfig(dataset="mnist"), root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte.gz" in msg
    assert "--download" in msg


def test_cli_missing_dataset_offline_is_one_line_exit_2(tmp_path):
    run_dir = tmp_path / "run"
    proc = cli("run", "fashion-mnist", "--data-root", str(tmp_path / "nowhere"), "--run-dir", str(run_dir))
    assert_one_line_error(proc, "FashionMNIST files not found", "t10k-images-idx3-ubyte.gz")
    assert not run_dir.exists()


def test_cli_missing_cifar10_offline(tmp_path):
    proc = cli("run", "cifar10", "--data-root", str(tmp_path))
    assert_one_line_error(proc, "cifar-10-batches-py", "--download")


@pytest.mark.slow
def test_short_run_on_real_mnist_t10k(shared_data, tmp_path):
    """The real MNIST test images end to end: train all three phases briefly and attack."""
    import json

    proc = cli("run", "mnist-t10k", "--data-root", str(shared_data), "--run-dir", str(tmp_path / "run"), "--quiet",
               "--set", "data.split=[2000, 500]", "--set", "training.epochs=2", "--set", "training.optimizer='adam'",
               "--set", "training.lr=0.002", "--set", "training.grad_clip=5.0",
               # the quick Adam profile, not the preset's SGD: its clip of 1 is tuned for SGD at lr 0.1
               "--set", "distillation.temperature=10", "--set", "attack.samples=2",
               "--set", "attack.outputs=['softmax']", "--set", "attack.methods=['jsma']", "--set", "attack.checks=[]",
               "--set", "device='cpu'")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "8,000" not in summary["data_note"] and "2,000 train / 500 held-out" in summary["data_note"]
    assert summary["accuracy"]["baseline"] > 0.85
    assert set(summary["attacks"]) == {"baseline-softmax", "student-softmax"}
