"""Datasets as tensors in [0, 1]: digits (bundled), MNIST, MNIST-t10k, FashionMNIST, CIFAR10.

torchvision loads the real files; it is never asked to download unless the preset says
`download = true` (or the CLI gets --download).
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import DatasetError
from engine.presets import DataConfig

# Fixed, independent of the preset seed: the held-out set must not move when the seed does.
SPLIT_SEED = 20160522


@dataclass
class DatasetSplit:
    name: str
    x_train: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    note: str  # how the split was made, for run directories and reports

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def _stratified_split(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=n_test, random_state=seed, stratify=y)
    return np.sort(train_idx), np.sort(test_idx)


def load_digits_28() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits, drawn like MNIST: 20x20 glyph centred in 28x28."""
    x, y, _train, _test = _digits_arrays()
    return torch.from_numpy(x), torch.from_numpy(y)


def _draw_digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = F.pad(x, (4, 4, 4, 4)).clamp_(0.0, 1.0)
    y = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = _stratified_split(y, n_test=360, seed=SPLIT_SEED)
    return {"x": x.numpy(), "y": y, "train": train_idx, "test": test_idx}


def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The drawn digits and their fixed split, cached per scikit-learn version: importing scikit-learn
    takes about 2 s, longer than the rest of an engine's start-up. A cache that cannot be read is drawn
    again; it is written to a temporary name and renamed."""
    from importlib.metadata import version

    path = _cache_dir() / f"digits28-v1-sklearn-{version('scikit-learn')}-torch-{torch.__version__}.npz"
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in ("x", "y", "train", "test")}
        if arrays["x"].shape == (1797, 1, 28, 28) and arrays["x"].dtype == np.float32:
            return arrays["x"], arrays["y"], arrays["train"], arrays["test"]
    except (OSError, ValueError, KeyError, EOFError):
        pass  # absent or damaged: drawn again below
    arrays = _draw_digits()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the digits are drawn again at the next start, nothing else changes
    return arrays["x"], arrays["y"], arrays["train"], arrays["test"]


def _digits() -> DatasetSplit:
    x, y, train_idx, test_idx = (torch.from_numpy(a) for a in _digits_arrays())
    return DatasetSplit("digits", x[train_idx], y[train_idx], x[test_idx], y[test_idx],
                        "scikit-learn digits (1,797 images, 8x8 resized to 20x20 in a 28x28 frame), "
                        "fixed stratified split 1,437 train / 360 held-out")


_IDX_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "defdistill"


def _idx_raw_folder(folder: Path, train: bool) -> Path:
    """The folder torchvision reads IDX files from, extracting published .gz files if needed.

    torchvision reads the extracted files only (its download step extracts them). Data found
    as published (.gz) are extracted once into a cache: the user's data folder is never written.
    """
    names = _IDX_FILES[train]
    if all((folder / n).is_file() for n in names):
        return folder
    if not all((folder / f"{n}.gz").is_file() for n in names):
        return folder
    target = _cache_dir() / "idx" / _folder_key(folder)
    target.mkdir(parents=True, exist_ok=True)
    for n in names:
        if not (target / n).is_file():
            # Extract under a temporary name, then rename: a killed run never leaves half a file.
            tmp = target / f".{n}.{os.getpid()}.partial"
            with gzip.open(folder / f"{n}.gz", "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, target / n)
    return target


def _folder_key(folder: Path) -> str:
    return str(folder.resolve()).strip("/").replace("/", "_")


def _torchvision_idx(cls_name: str, root: Path, folder_name: str, train: bool, download: bool):
    import torchvision.datasets as tvd

    base = getattr(tvd, cls_name)
    raw = root / folder_name / "raw"

    class _InPlace(base):  # type: ignore[misc, valid-type]
        # torchvision insists on all four files even when one split is wanted, and on its own
        # folder name; the t10k-only MNIST copy has neither.
        @property
        def raw_folder(self) -> str:
            return str(_idx_raw_folder(raw, train))

        def _check_exists(self) -> bool:
            folder = Path(self.raw_folder)
            return all((folder / n).is_file() for n in _IDX_FILES[train])

    if download:
        ds = base(str(root), train=train, download=True)
        return ds.data, ds.targets
    _require_idx(cls_name, root, folder_name, (train,))
    try:
        ds = _InPlace(str(root), train=train, download=False)
    except (RuntimeError, OSError, AssertionError, EOFError) as exc:
        raise DatasetError(f"{cls_name} files in {raw} are unreadable ({exc}); replace them with the "
                           "published .gz files") from None
    return ds.data, ds.targets


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.unsqueeze(1).float().div_(255.0)


def _require_idx(cls_name: str, root: Path, folder_name: str, splits: tuple[bool, ...]) -> None:
    raw = root / folder_name / "raw"
    missing = [f"{n}.gz" for s in splits for n in _IDX_FILES[s]
               if not (raw / n).is_file() and not (raw / f"{n}.gz").is_file()]
    if missing:
        raise DatasetError(
            f"{cls_name} files not found: put {', '.join(missing)} in {raw}/ "
            f"(or pass --download where there is network, or --data-root to where they are)")


def _idx_dataset(name: str, cls_name: str, folder: str, root: Path, download: bool) -> DatasetSplit:
    if not download:
        _require_idx(cls_name, root, folder, (True, False))
    xtr, ytr = _torchvision_idx(cls_name, root, folder, True, download)
    xte, yte = _torchvision_idx(cls_name, root, folder, False, download)
    return DatasetSplit(name, _to_float(xtr), ytr.long(), _to_float(xte), yte.long(),
                        f"{cls_name} as published: {len(ytr):,} train / {len(yte):,} test")


def _mnist_t10k(root: Path, split: tuple[int, int], download: bool) -> DatasetSplit:
    x, y = _torchvision_idx("MNIST", root, "MNIST-t10k", False, download)
    n_train, n_test = split
    if n_train + n_test > len(y) or n_train < 1 or n_test < 1:
        raise DatasetError(f"data.split = {list(split)} needs {n_train + n_test} images but MNIST t10k has "
                           f"{len(y)}; choose two positive sizes that add up to at most {len(y)}")
    train_idx, test_idx = _stratified_split(y.numpy(), n_test=n_test, seed=SPLIT_SEED)
    train_idx = train_idx[:n_train]
    return DatasetSplit("mnist-t10k", _to_float(x[train_idx]), y[train_idx].long(),
                        _to_float(x[test_idx]), y[test_idx].long(),
                        f"the real MNIST test set (10,000 images) split {n_train:,} train / {n_test:,} "
                        "held-out (stratified, fixed seed): not the paper's 60,000 / 10,000")


def _cifar10(root: Path, download: bool) -> DatasetSplit:
    import torchvision.datasets as tvd

    folder = root / "cifar-10-batches-py"
    if not download and not folder.is_dir():
        raise DatasetError(f"CIFAR10 not found: put data_batch_1..5, test_batch and batches.meta in {folder}/ "
                           "(extracted cifar-10-python.tar.gz), or pass --download where there is network")
    try:
        tr = tvd.CIFAR10(str(root), train=True, download=download)
        te = tvd.CIFAR10(str(root), train=False, download=download)
    except RuntimeError as exc:
        raise DatasetError(f"CIFAR10 files in {folder} are missing or corrupt ({exc}); "
                           "replace them with the published archive's contents") from None

    def conv(ds) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.from_numpy(ds.data).permute(0, 3, 1, 2).float().div_(255.0),
                torch.tensor(ds.targets, dtype=torch.int64))

    xtr, ytr = conv(tr)
    xte, yte = conv(te)
    return DatasetSplit("cifar10", xtr, ytr, xte, yte, "CIFAR10 as published: 50,000 train / 10,000 test")


def load_dataset(cfg: DataConfig, root: str | Path | None = None, download: bool | None = None) -> DatasetSplit:
    """Load the preset's dataset; missing files are a one-line DatasetError, never a download."""
    root_path = Path(root if root is not None else cfg.root).expanduser()
    dl = cfg.download if download is None else download
    if cfg.dataset == "digits":
        split = _digits()
    elif cfg.dataset == "mnist":
        split = _idx_dataset("mnist", "MNIST", "MNIST", root_path, dl)
    elif cfg.dataset == "mnist-t10k":
        split = _mnist_t10k(root_path, cfg.split, dl)
    elif cfg.dataset == "fashion-mnist":
        split = _idx_dataset("fashion-mnist", "FashionMNIST", "FashionMNIST", root_path, dl)
    else:
        split = _cifar10(root_path, dl)
    if cfg.train_limit:
        split.x_train, split.y_train = split.x_train[: cfg.train_limit], split.y_train[: cfg.train_limit]
        split.note += f"; first {len(split.y_train):,} train images only (data.train_limit)"
    if cfg.test_limit:
        split.x_test, split.y_test = split.x_test[: cfg.test_limit], split.y_test[: cfg.test_limit]
        split.note += f"; first {len(split.y_test):,} held-out images only (data.test_limit)"
    return split
