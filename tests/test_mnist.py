"""examples/mnist.py: its IDX reader and downloader, and training on the real MNIST test set
(first 8,000 images for training, last 2,000 held out) against nn.Linear from the same seed."""

import gzip
import hashlib
import importlib.util
import io
import math
import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

import linear_ext

_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mnist.py"
_spec = importlib.util.spec_from_file_location("mnist_example", _EXAMPLE)
mnist = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mnist)

DATA_DIR = next((d for d in mnist.default_data_dirs() if mnist.has_test_set(d)), None)
needs_data = pytest.mark.skipif(DATA_DIR is None, reason=(
    "no MNIST test set (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) in "
    + " or ".join(str(d) for d in mnist.default_data_dirs())))


def idx_bytes(magic, shape, payload=None):
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape)
    return header + (bytes(math.prod(shape)) if payload is None else payload)


@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_reads_raw_and_gzipped_files(tmp_path, compressed):
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    data = idx_bytes(mnist.IMAGES_MAGIC, (3, 28, 28), images.numpy().tobytes())
    path = tmp_path / ("images.gz" if compressed else "images")
    path.write_bytes(gzip.compress(data) if compressed else data)
    assert torch.equal(mnist.read_idx(path, mnist.IMAGES_MAGIC), images)


@pytest.mark.parametrize("data, message", [
    (idx_bytes(mnist.LABELS_MAGIC, (5,)), "magic number 2049 .* expected 2051"),
    (idx_bytes(mnist.IMAGES_MAGIC, (2, 28, 28))[:-1], "needs exactly"),
    (idx_bytes(mnist.IMAGES_MAGIC, (2, 28, 28)) + b"\0", "needs exactly"),
    (idx_bytes(mnist.IMAGES_MAGIC, (2, 28, 28))[:10], "too short for a 3-dimensional IDX header"),
    (b"\0\0", "too short for an IDX header"),
])
def test_read_idx_rejects_malformed_files(tmp_path, data, message):
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        mnist.read_idx(path, mnist.IMAGES_MAGIC)


def test_read_idx_rejects_a_corrupt_gzip(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(idx_bytes(mnist.IMAGES_MAGIC, (1, 28, 28)))[:-8])
    with pytest.raises(ValueError, match="cannot read"):
        mnist.read_idx(path, mnist.IMAGES_MAGIC)


def test_load_mnist_checks_images_against_labels(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(mnist.IMAGES_MAGIC, (9000, 28, 28)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(mnist.LABELS_MAGIC, (8999,)))
    with pytest.raises(ValueError, match="labels of shape \\[8999\\] for 9000 images"):
        mnist.load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="--download"):
        mnist.load_mnist(tmp_path / "missing")


def test_download_without_internet_says_so(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match="could not download .* from any mirror(.|\n)*no internet access"):
        mnist.download(tmp_path)


def test_download_falls_back_to_an_offline_copy(tmp_path, monkeypatch):
    """`--download` without `--data` (the README's main job) trains on a local copy when offline."""
    offline_copy = tmp_path / "shared"
    offline_copy.mkdir()
    for stem, magic, shape in [(mnist.FILES["test_images"], mnist.IMAGES_MAGIC, (8010, 28, 28)),
                               (mnist.FILES["test_labels"], mnist.LABELS_MAGIC, (8010,))]:
        (offline_copy / stem).write_bytes(idx_bytes(magic, shape))

    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", offline)
    monkeypatch.setattr(mnist, "default_data_dirs", lambda: [tmp_path / "data" / "mnist", offline_copy])
    loaded = {}

    def stop_at_load(data_dir):  # where main() would train from; no training needed here
        loaded["dir"] = data_dir
        raise SystemExit

    monkeypatch.setattr(mnist, "load_mnist", stop_at_load)
    with pytest.raises(SystemExit):
        mnist.main(["--download", "--epochs", "1", "--no-plot", "--no-progress"])
    assert loaded["dir"] == offline_copy


def test_download_verifies_checksums_and_writes_the_files(tmp_path, monkeypatch):
    served = {name: gzip.compress(name.encode()) for name in mnist.GZ_MD5}
    good_mirror = mnist.MIRRORS[1]

    def urlopen(url, timeout):
        name = url.rsplit("/", 1)[1]
        body = served[name] if url.startswith(good_mirror) else b"corrupted"
        return io.BytesIO(body)

    monkeypatch.setattr(mnist.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(mnist, "GZ_MD5", {n: hashlib.md5(b).hexdigest() for n, b in served.items()})
    mnist.download(tmp_path / "new")
    assert {p.name: p.read_bytes() for p in (tmp_path / "new").iterdir()} == served


@needs_data
def test_real_data_is_split_8000_2000():
    data = mnist.load_mnist(DATA_DIR)
    assert data.train_x.shape == (8000, 784) and data.test_x.shape == (2000, 784)
    assert data.train_y.shape == (8000,) and data.test_y.shape == (2000,)
    assert set(data.train_y.unique().tolist()) == set(range(10))
    assert abs(data.train_x.mean().item()) < 0.1  # normalised


@needs_data
def test_mnist_reaches_95_percent_and_follows_nn_linear_loss_curve(num_threads):
    # One thread: the results do not depend on it, and a busy shared machine slows two threads that
    # wait on each other far more than it slows one.
    num_threads(1)
    data = mnist.load_mnist(DATA_DIR)
    ours = mnist.train(data, linear=linear_ext.Linear, epochs=5, seed=0)
    reference = mnist.train(data, linear=nn.Linear, epochs=5, seed=0)
    accuracies = [r.accuracy for r in ours]
    assert ours[-1].accuracy >= 0.95, f"held-out accuracy per epoch: {accuracies}"
    # The same initial weights and batches: the first step's loss agrees to float32 rounding; later,
    # rounding differences (in different summation orders) grow, but the curves stay together.
    assert ours[0].step_losses[0] == pytest.approx(reference[0].step_losses[0], rel=1e-6)
    for epoch, (a, b) in enumerate(zip(ours, reference), start=1):
        assert a.loss == pytest.approx(b.loss, rel=0.05, abs=0.005), f"epoch {epoch} mean loss"
        assert abs(a.accuracy - b.accuracy) <= 0.01, f"epoch {epoch} accuracy"


@needs_data
def test_command_line_compares_with_nn_linear_and_saves_a_plot(tmp_path, capsys, num_threads):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curves.png"
    argv = ["--data", str(DATA_DIR), "--epochs", "1", "--compare-torch", "--no-progress", "--plot", str(plot),
            "--threads", "1"]
    assert mnist.main(argv) == 0
    out = capsys.readouterr().out
    assert "test set only, train on its first 8000, held out its last 2000" in out
    assert "linear_ext" in out and "nn.Linear" in out and "total training time" in out
    assert plot.stat().st_size > 0
