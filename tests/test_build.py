"""The compiled library refuses to load against another torch/CUDA than it was built for, and says
how to rebuild; setup.py stops early without torch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_python

REPO = Path(__file__).resolve().parents[1]


def test_import_refuses_another_torch_version():
    result = run_python("import torch; torch.__version__ = '0.0.1'; import linear_ext")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "but torch 0.0.1 is running" in result.stderr
    assert "pip install --no-build-isolation --force-reinstall --no-deps ." in result.stderr


def test_import_refuses_another_cuda_version():
    code = (
        "import importlib.util, pathlib, torch\n"
        "info = {}\n"  # read the build info without importing (and so loading) the package
        "pkg = importlib.util.find_spec('linear_ext').submodule_search_locations[0]\n"
        "exec((pathlib.Path(pkg) / '_build_info.py').read_text(), info)\n"
        "if not info['WITH_CUDA']: raise SystemExit(3)\n"
        "torch.version.cuda = '1.0'\nimport linear_ext"
    )
    result = run_python(code)
    if result.returncode == 3:
        pytest.skip("this build has no CUDA kernels, so it records no CUDA version")
    assert result.returncode != 0 and "this torch uses CUDA 1.0" in result.stderr


def test_import_explains_a_missing_library():
    result = run_python("import sys; sys.modules['linear_ext._C'] = None; import linear_ext")
    assert result.returncode != 0
    assert "compiled library could not be loaded" in result.stderr and "--no-build-isolation" in result.stderr


def test_setup_py_without_torch_stops_with_instructions(tmp_path):
    # A fake `torch` package that fails to import stands in for a machine without torch.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "setup.py", "--version"], cwd=REPO, env=env, capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert "PyTorch must be installed before this package is built" in result.stderr
