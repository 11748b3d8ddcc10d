"""Hostile or mistaken use: every bad input raises a clear exception, and never aborts, crashes or hangs.

Cases that reach the C++ kernels with odd arguments run in a child process (this file run as a
script), one after another with a per-case watchdog; the child reports each outcome as a JSON
line. A case that kills or hangs the child fails with the signal and the child's stderr, and the
remaining cases run in a fresh child. Cases that stay in Python (meta tensors, autograd modes,
state dicts) run here, next to the same call on nn.Linear / F.linear where torch defines the answer.
"""

import faulthandler
import json
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import linear_ext
from linear_ext import functional

forward = torch.ops.linear_ext.linear_forward.default
backward_input = torch.ops.linear_ext.linear_backward_input.default
backward_weight = torch.ops.linear_ext.linear_backward_weight.default

CASE_TIMEOUT_S = float(os.environ.get("LINEAR_EXT_HOSTILE_CASE_TIMEOUT", "60"))
HUGE = 2**40  # rows declared through expand: the output alone would need terabytes

# name -> (callable, accepted exception class names (empty: must return), message regex)
ISOLATED = {}


def isolated(expected, pattern=""):
    def register(fn):
        ISOLATED[fn.__name__] = (fn, (expected,) if isinstance(expected, str) else tuple(expected or ()), pattern)
        return fn
    return register


def r(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*shape, dtype=dtype, device=device)


# --- Ranks ---------------------------------------------------------------------------------------------

@isolated("RuntimeError", r"linear_forward: input must be 2-D, got shape \[\]")
def op_forward_0d_input():
    forward(torch.tensor(1.0), r(3, 1), None)


@isolated("RuntimeError", r"linear_forward: input must be 2-D, got shape \[2, 3, 4\]")
def op_forward_3d_input():
    forward(r(2, 3, 4), r(5, 4), None)


@isolated("RuntimeError", r"linear_forward: weight must be 2-D, got shape \[4\]")
def op_forward_1d_weight():
    forward(r(3, 4), r(4), None)


@isolated("RuntimeError", r"linear_backward_input: grad_out must be 2-D, got shape \[5\]")
def op_backward_input_1d_grad():
    backward_input(r(5), r(5, 4))


@isolated("RuntimeError", r"linear_backward_input: weight must be 2-D, got shape \[1, 5, 4\]")
def op_backward_input_3d_weight():
    backward_input(r(3, 5), r(1, 5, 4))


@isolated("RuntimeError", r"linear_backward_weight: grad_out must be 2-D, got shape \[2, 3, 5\]")
def op_backward_weight_3d_grad():
    backward_weight(r(2, 3, 5), r(6, 4), True)


@isolated("RuntimeError", r"linear_backward_weight: input must be 2-D, got shape \[\]")
def op_backward_weight_0d_input():
    backward_weight(r(3, 5), torch.tensor(2.0), False)


@isolated("RuntimeError", r"linear: weight must be 2-D, got shape \[2, 4, 3\]")
def functional_3d_weight():
    functional.linear(r(5, 3), r(2, 4, 3))


@isolated("RuntimeError", r"linear: weight must be 2-D, got shape \[\]")
def functional_0d_weight():
    functional.linear(r(5, 3), torch.tensor(1.0))


# --- Shapes --------------------------------------------------------------------------------------------

@isolated("RuntimeError", r"bias must have shape \[3\] \(out_features of weight \[3, 4\]\), got \[\]")
def op_forward_0d_bias():
    forward(r(2, 4), r(3, 4), torch.tensor(1.0))


@isolated("RuntimeError", r"bias must have shape \[3\] \(out_features of weight \[3, 4\]\), got \[\]")
def functional_0d_bias():
    # F.linear broadcasts a 0-d bias; linear_ext asks for out_features values (a clear error, not a crash)
    functional.linear(r(2, 4), r(3, 4), torch.tensor(1.0))


@isolated("RuntimeError", r"bias must have shape \[3\].*got \[3, 1\]")
def functional_column_bias():
    functional.linear(r(2, 4), r(3, 4), r(3, 1))


@isolated("RuntimeError", r"linear_backward_input: grad_out of shape \[2, 3\] has 3 features but weight of shape \[4, 6\]")
def op_backward_input_mismatch():
    backward_input(r(2, 3), r(4, 6))


@isolated("RuntimeError", r"input of shape \[7\] has 7 features but weight of shape \[2, 6\]")
def functional_1d_input_mismatch():
    functional.linear(r(7), r(2, 6))


@isolated("RuntimeError", r"input of shape \[2, 5\] has 5 features but weight of shape \[3, 4\]")
def module_wrong_in_features():
    linear_ext.Linear(4, 3)(r(2, 5))


# --- Dtypes --------------------------------------------------------------------------------------------

@isolated("TypeError", r"linear_forward: input \(torch.float16\) and weight \(torch.float32\) must have the same dtype")
def functional_mixed_dtypes():
    functional.linear(r(2, 3, dtype=torch.float16), r(4, 3))


@isolated("TypeError", r"linear_forward: input \(torch.float32\) and weight \(torch.float64\) must have the same dtype")
def module_float64_on_float32_input():
    linear_ext.Linear(3, 2, dtype=torch.float64)(r(2, 3))


@isolated("TypeError", r"linear_backward_input: grad_out \(torch.bfloat16\) and weight \(torch.float32\) must have the same dtype")
def op_backward_input_mixed_dtypes():
    backward_input(r(2, 3, dtype=torch.bfloat16), r(3, 4))


@isolated("TypeError", r"linear_forward: input has dtype torch.int64; supported")
def functional_integer_tensors():
    functional.linear(torch.ones(2, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long))


@isolated("TypeError", r"linear_forward: input has dtype torch.bool; supported")
def functional_bool_tensors():
    functional.linear(torch.ones(2, 3, dtype=torch.bool), torch.ones(4, 3, dtype=torch.bool))


@isolated("TypeError", r"linear_forward: input has dtype torch.float8_e4m3fn; supported")
def op_forward_float8():
    forward(r(2, 3).to(torch.float8_e4m3fn), r(4, 3).to(torch.float8_e4m3fn), None)


@isolated("TypeError", r"linear_backward_weight: input has dtype torch.int32; supported")
def op_backward_weight_integer_input():
    backward_weight(r(2, 3), torch.ones(2, 4, dtype=torch.int32), True)


@isolated("TypeError", r"input \(torch.float32\) and bias \(torch.int32\) must have the same dtype")
def functional_integer_bias():
    functional.linear(r(2, 3), r(4, 3), torch.ones(4, dtype=torch.int32))


@isolated("RuntimeError", r"Only Tensors of floating point and complex dtype can require gradients")
def requires_grad_integer_tensor():
    functional.linear(torch.ones(2, 3, dtype=torch.long, requires_grad=True), torch.ones(4, 3, dtype=torch.long))


@isolated("TypeError", r"linear_forward: input has dtype torch.int64; supported")
def requires_grad_weight_with_integer_input():
    functional.linear(torch.ones(2, 3, dtype=torch.long), r(4, 3).requires_grad_())


# --- Devices and layouts the kernels do not have -----------------------------------------------------

@isolated("RuntimeError", r"linear_forward: input is on cpu but weight is on meta")
def functional_cpu_input_meta_weight():
    functional.linear(r(2, 3), r(4, 3, device="meta"))


@isolated("RuntimeError", r"linear_forward: input is on cpu but bias is on meta")
def functional_meta_bias():
    functional.linear(r(2, 3), r(4, 3), r(4, device="meta"))


@isolated("RuntimeError", r"linear_backward_weight: grad_out is on meta but input is on cpu")
def op_backward_weight_meta_and_cpu():
    backward_weight(r(2, 3, device="meta"), r(2, 4), True)


@isolated("NotImplementedError", r"Could not run 'linear_ext::linear_forward' with arguments from the 'SparseCPU' backend")
def op_forward_sparse_input():
    forward(r(2, 3).to_sparse(), r(4, 3), None)


@isolated("NotImplementedError", r"Could not run 'linear_ext::linear_forward' with arguments from the '\w*NestedTensor\w*' backend")
def op_forward_nested_input():
    forward(torch.nested.nested_tensor([r(2, 3), r(4, 3)]), r(5, 3), None)


@isolated(("RuntimeError", "NotImplementedError"), r"^(?![\s\S]*Internal error)[\s\S]*[Nn]ested")
def functional_nested_input():
    # F.linear accepts nested tensors; failing is fine, but with a message that says why (not an
    # "Internal error ... Please file an issue" from deep inside torch)
    functional.linear(torch.nested.nested_tensor([r(2, 3), r(4, 3)]), r(5, 3))


# --- Arguments that are not tensors --------------------------------------------------------------------

@isolated("RuntimeError", r"Expected a value of type 'Tensor' for argument 'input' but instead found type 'list'")
def op_forward_list_input():
    forward([[1.0, 2.0]], r(3, 2), None)


@isolated("RuntimeError", r"Expected a value of type 'Optional\[Tensor\]' for argument 'bias' but instead found type 'int'")
def op_forward_int_bias():
    forward(r(2, 2), r(3, 2), 1)


@isolated("RuntimeError", r"Expected a value of type 'bool' for argument 'bias_grad' but instead found type 'str'")
def op_backward_weight_str_flag():
    backward_weight(r(2, 3), r(2, 4), "yes")


@isolated("RuntimeError", r"missing value for argument 'bias'")
def op_forward_missing_argument():
    forward(r(2, 3), r(4, 3))


@isolated("RuntimeError", r"expected at most 3 argument\(s\) but received 4")
def op_forward_extra_argument():
    forward(r(2, 3), r(4, 3), None, None)


# F.linear raises TypeError ("argument 'input' (position 1) must be Tensor, not list"); a
# RuntimeError naming the argument and the expected type is as clear.
NOT_A_TENSOR = ("TypeError", "RuntimeError")


@isolated(NOT_A_TENSOR, r"'input'.*Tensor|Tensor.*'input'")
def functional_list_input():
    functional.linear([[1.0, 2.0]], r(3, 2))


@isolated(NOT_A_TENSOR, r"'weight'.*Tensor|Tensor.*'weight'")
def functional_none_weight():
    functional.linear(r(3, 2), None)


@isolated(NOT_A_TENSOR, r"'weight'.*Tensor|Tensor.*'weight'")
def functional_numpy_weight():
    import numpy

    functional.linear(r(3, 2), numpy.ones((4, 2), dtype=numpy.float32))


@isolated(NOT_A_TENSOR, r"'bias'.*Tensor|Tensor.*'bias'")
def functional_float_bias():
    functional.linear(r(3, 2), r(4, 2), 0.5)


@isolated(NOT_A_TENSOR, r"'input'.*Tensor|Tensor.*'input'")
def module_list_input():
    linear_ext.Linear(2, 3)([[1.0, 2.0]])


@isolated(None)
def functional_under_vmap():
    # torch.vmap runs the op through torch's per-sample fallback (with a performance warning):
    # slow, but the result must be right
    w = r(3, 4)
    x = r(5, 2, 4)
    out = torch.vmap(lambda x: functional.linear(x, w))(x)
    torch.testing.assert_close(out, torch.nn.functional.linear(x, w))


# --- Huge declared shapes (expand: no memory behind them) --------------------------------------------

@isolated("RuntimeError", r"can't allocate memory|out of memory|Cannot allocate")
def op_forward_huge_batch():
    forward(r(1, 8).expand(HUGE, 8), r(4, 8), None)


@isolated("RuntimeError", r"can't allocate memory|out of memory|Cannot allocate")
def op_forward_huge_out_features():
    forward(r(3, 8), r(1, 8).expand(HUGE, 8), None)


@isolated("RuntimeError", r"can't allocate memory|out of memory|Cannot allocate")
def op_backward_input_huge_batch():
    backward_input(r(1, 3).expand(HUGE, 3), r(3, 8))


@isolated("RuntimeError", r"can't allocate memory|out of memory|Cannot allocate")
def op_backward_weight_huge_grad_weight():
    backward_weight(r(1, 1).expand(2, 2**22), r(1, 1).expand(2, 2**22), True)


@isolated("RuntimeError", r"Storage size calculation overflowed|integer multiplication overflow")
def functional_overflowing_batch():
    functional.linear(r(1, 1, 4).expand(2**62, 2**62, 4), r(3, 4))


@isolated(None)
def op_forward_huge_batch_zero_out_features():
    assert forward(r(1, 8).expand(HUGE, 8), r(0, 8), None).shape == (HUGE, 0)


@isolated(None)
def op_backward_input_huge_batch_zero_in_features():
    assert backward_input(r(1, 3).expand(HUGE, 3), r(3, 0)).shape == (HUGE, 0)


@isolated(None)
def op_backward_weight_huge_batch_zero_out_features():
    dw, db = backward_weight(r(1, 1).expand(HUGE, 0), r(1, 8).expand(HUGE, 8), True)
    assert dw.shape == (0, 8) and db.shape == (0,)


# --- Autograd misuse -----------------------------------------------------------------------------------

@isolated("RuntimeError", r"Mismatch in shape: grad_output\[0\] has a shape of torch.Size\(\[2, 4\]\)")
def backward_with_wrong_grad_shape():
    x = r(2, 3).requires_grad_()
    functional.linear(x, r(5, 3)).backward(r(2, 4))


@isolated("RuntimeError", r"invalid gradient at index 0 - expected device cpu but got meta")
def backward_with_grad_on_another_device():
    x = r(2, 3).requires_grad_()
    functional.linear(x, r(5, 3)).backward(r(2, 5, device="meta"))


@isolated("RuntimeError", r"does not require grad")
def backward_of_inference_mode_output():
    layer = linear_ext.Linear(3, 4)
    with torch.inference_mode():
        y = layer(r(2, 3).requires_grad_())
    y.sum().backward()


@isolated("RuntimeError", r"Trying to backward through the graph a second time")
def backward_twice():
    x = r(2, 3).requires_grad_()
    y = functional.linear(x, r(5, 3)).sum()
    y.backward()
    y.backward()


# --- Child process -------------------------------------------------------------------------------------

def _child_main(names):
    """Runs the named cases in order, printing one JSON line per outcome before the next starts."""
    for name in names:
        fn, _, _ = ISOLATED[name]
        faulthandler.dump_traceback_later(CASE_TIMEOUT_S, exit=True)
        try:
            fn()
            outcome = {"name": name, "raised": None, "mro": [], "message": ""}
        except BaseException as e:  # noqa: BLE001  (anything short of a crash is an outcome)
            outcome = {"name": name, "raised": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
                       "message": str(e), "traceback": traceback.format_exc()[-3000:]}
        faulthandler.cancel_dump_traceback_later()
        print(json.dumps(outcome), flush=True)


def _run_isolated(names):
    """name -> outcome for every case; a crash or hang is the outcome of the case that caused it."""
    env = dict(os.environ)
    roots = [str(Path(linear_ext.__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]
    env["PYTHONPATH"] = os.pathsep.join(roots + [p for p in [env.get("PYTHONPATH")] if p])
    results, pending = {}, list(names)
    while pending:
        proc = subprocess.run([sys.executable, "-X", "faulthandler", __file__, *pending], env=env,
                              capture_output=True, text=True, timeout=CASE_TIMEOUT_S * len(pending) + 120)
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                outcome = json.loads(line)
                results[outcome["name"]] = outcome
        done = [n for n in pending if n in results]
        pending = pending[len(done):]
        if pending:
            culprit = pending.pop(0)
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
            if "Timeout (" in proc.stderr:
                how = f"hung: stopped by the {CASE_TIMEOUT_S:g} s watchdog"
            results[culprit] = {"name": culprit, "crashed": f"the child process died ({how}) during this case",
                                "stderr": proc.stderr[-6000:]}
    return results


@pytest.fixture(scope="module")
def isolated_outcomes():
    return _run_isolated(list(ISOLATED))


@pytest.mark.parametrize("name", list(ISOLATED))
def test_bad_input_raises_clear_error(name, isolated_outcomes):
    _, expected, pattern = ISOLATED[name]
    outcome = isolated_outcomes[name]
    assert "crashed" not in outcome, f"{outcome['crashed']}\n{outcome['stderr']}"
    if not expected:
        assert outcome["raised"] is None, f"raised {outcome['raised']}: {outcome['message']}\n{outcome.get('traceback')}"
        return
    assert outcome["raised"] is not None, f"expected {expected}, but the call returned"
    assert set(expected) & set(outcome["mro"]), (f"expected {expected} matching {pattern!r}, got {outcome['raised']}: "
                                        f"{outcome['message'][:500]}\n{outcome.get('traceback')}")
    assert re.search(pattern, outcome["message"]), f"message does not match {pattern!r}: {outcome['message'][:1000]}"


# --- In process: behaves like nn.Linear / F.linear ---------------------------------------------------

def _raises_like(fn_ours, fn_ref):
    """Both raise the same exception type with the same message (or both return)."""
    outcomes = []
    for fn in (fn_ours, fn_ref):
        try:
            fn()
            outcomes.append(None)
        except Exception as e:  # noqa: BLE001
            outcomes.append((type(e), str(e).replace("linear_ext.modules.Linear", "Linear")))
    assert outcomes[0] == outcomes[1], f"linear_ext: {outcomes[0]}\ntorch:      {outcomes[1]}"
    return outcomes[0]


def _pair(in_features=5, out_features=3, **kwargs):
    ref = nn.Linear(in_features, out_features, **kwargs)
    ours = linear_ext.Linear(in_features, out_features, **kwargs)
    return ours, ref


@pytest.mark.parametrize("state", [
    "transposed weight", "bias too long", "missing bias", "unexpected key", "bias where none expected", "0-d bias",
])
def test_load_state_dict_errors_like_nn_linear(state):
    ours, ref = _pair()
    no_bias_ours, no_bias_ref = _pair(bias=False)
    good = nn.Linear(5, 3).state_dict()
    bad = {
        "transposed weight": {"weight": good["weight"].t(), "bias": good["bias"]},
        "bias too long": {"weight": good["weight"], "bias": torch.zeros(4)},
        "missing bias": {"weight": good["weight"]},
        "unexpected key": {**good, "scale": torch.ones(1)},
        "bias where none expected": good,
        "0-d bias": {"weight": good["weight"], "bias": torch.tensor(1.0)},
    }[state]
    if state == "bias where none expected":
        ours, ref = no_bias_ours, no_bias_ref
    error = _raises_like(lambda: ours.load_state_dict(bad), lambda: ref.load_state_dict(bad))
    assert error is not None and error[0] is RuntimeError
    ours(r(2, 5))


def test_load_state_dict_non_strict_like_nn_linear():
    ours, ref = _pair()
    partial = {"weight": torch.ones(3, 5)}
    assert ours.load_state_dict(partial, strict=False) == ref.load_state_dict(partial, strict=False)
    torch.testing.assert_close(ours(torch.ones(1, 5)) - ours.bias, torch.full((1, 3), 5.0))


@pytest.mark.parametrize("args", [(-1, 3), (3, -2)])
def test_negative_features_like_nn_linear(args):
    _raises_like(lambda: linear_ext.Linear(*args), lambda: nn.Linear(*args))


@pytest.mark.parametrize("in_features,out_features", [(0, 3), (4, 0), (0, 0)])
def test_zero_features_like_nn_linear(in_features, out_features):
    ours, ref = _pair(in_features, out_features)
    ours.load_state_dict(ref.state_dict())
    x = r(2, 6, in_features).requires_grad_()
    y, y_ref = ours(x), ref(x)
    torch.testing.assert_close(y, y_ref)
    (gx,) = torch.autograd.grad(y.sum(), x)
    (gx_ref,) = torch.autograd.grad(y_ref.sum(), x)
    torch.testing.assert_close(gx, gx_ref)


# inference_mode / no_grad: the output's flags and what happens afterwards, as with nn.Linear

@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
@pytest.mark.parametrize("input_requires_grad", [True, False])
def test_grad_modes_like_nn_linear(mode, input_requires_grad):
    ours, ref = _pair()
    ours.load_state_dict(ref.state_dict())
    x = r(4, 5).requires_grad_(input_requires_grad)
    ctx = torch.inference_mode if mode == "inference_mode" else torch.no_grad
    with ctx():
        y, y_ref = ours(x), ref(x)
        y_f = functional.linear(x, ours.weight, ours.bias)
    for out in (y, y_f):
        assert (out.requires_grad, out.is_inference(), out.grad_fn) == (y_ref.requires_grad, y_ref.is_inference(), None)
        torch.testing.assert_close(out, y_ref)


def test_inference_tensors_outside_inference_mode_like_nn_linear():
    """Parameters or inputs created in inference mode cannot be saved for backward: same error."""
    with torch.inference_mode():
        ours, ref = _pair()
        x_inf = r(2, 5)
    x = r(2, 5).requires_grad_()
    _raises_like(lambda: ours(x), lambda: ref(x))
    ours2, ref2 = _pair()
    _raises_like(lambda: ours2(x_inf), lambda: ref2(x_inf))
    with torch.no_grad():  # and without autograd they are usable
        torch.testing.assert_close(ours(x_inf), F.linear(x_inf, ours.weight, ours.bias))


def test_inference_mode_then_backward_outside():
    """A graph recorded before inference mode still backpropagates after it."""
    layer = linear_ext.Linear(5, 3)
    x = r(4, 5).requires_grad_()
    y = layer(x)
    with torch.inference_mode():
        layer(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, layer.weight.detach().sum(0).expand(4, 5))


# autocast: nn.Linear runs in the autocast dtype, and accepts inputs that earlier autocast ops made

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_like_nn_linear(dtype):
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    ours = nn.Sequential(linear_ext.Linear(5, 8), nn.ReLU(), linear_ext.Linear(8, 3))
    mixed = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), linear_ext.Linear(8, 3))  # ours fed an autocast output
    ours.load_state_dict(ref.state_dict())
    mixed.load_state_dict(ref.state_dict())
    x = r(4, 5)
    with torch.autocast("cpu", dtype=dtype):
        y_ref = ref(x)
        assert y_ref.dtype == dtype
        for model in (ours, mixed):
            y = model(x)
            assert y.dtype == y_ref.dtype
            torch.testing.assert_close(y, y_ref, atol=2e-2, rtol=2e-2)


# meta tensors: meta outputs of the right shapes through the fake kernels

@pytest.mark.parametrize("shape", [(7,), (2, 7), (0, 7), (3, 4, 7), (2, 0, 3, 7)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_meta_tensors_give_meta_outputs(shape, with_bias):
    x = torch.empty(shape, device="meta", requires_grad=True)
    w = torch.empty(5, 7, device="meta", requires_grad=True)
    b = torch.empty(5, device="meta", requires_grad=True) if with_bias else None
    y = functional.linear(x, w, b)
    assert y.is_meta and y.shape == F.linear(x, w, b).shape
    grads = torch.autograd.grad(y.sum(), [t for t in (x, w, b) if t is not None])
    assert all(g.is_meta for g in grads) and [g.shape for g in grads] == [t.shape for t in (x, w, b) if t is not None]
    layer = linear_ext.Linear(7, 5, bias=with_bias, device="meta")
    assert layer(x).is_meta and layer(x).shape == y.shape


def test_meta_ops_give_meta_outputs():
    m = lambda *s: torch.empty(*s, device="meta")  # noqa: E731
    y = forward(m(6, 7), m(5, 7), m(5))
    dx = backward_input(m(6, 5), m(5, 7))
    dw, db = backward_weight(m(6, 5), m(6, 7), True)
    _, no_db = backward_weight(m(6, 5), m(6, 7), False)
    assert all(t.is_meta for t in (y, dx, dw, db, no_db))
    assert (y.shape, dx.shape, dw.shape, db.shape, no_db.shape) == ((6, 5), (6, 7), (5, 7), (5,), (0,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_meta_shape_errors_match_cpu(dtype):
    """The fake kernels reject what the CPU kernels reject, with the same message."""
    for device in ("cpu", "meta"):
        with pytest.raises(RuntimeError, match=r"input of shape \[2, 3, 4\] has 4 features but weight of shape \[5, 6\]"):
            functional.linear(torch.empty(2, 3, 4, device=device, dtype=dtype), torch.empty(5, 6, device=device, dtype=dtype))


# zero-stride weights are valid inputs (read in place), with correct values and grads

@pytest.mark.parametrize("kind", ["row broadcast", "column broadcast", "one element"])
def test_zero_stride_weight(kind):
    N, K = 37, 70
    if kind == "row broadcast":
        w = r(1, K).expand(N, K)
    elif kind == "column broadcast":
        w = r(N, 1).expand(N, K)
    else:
        w = r(1).as_strided((N, K), (0, 0))
    w = w.detach().requires_grad_()
    b = r(1).expand(N).detach().requires_grad_()
    x = r(3, 9, K).requires_grad_()
    y = functional.linear(x, w, b)
    y_ref = F.linear(x.double(), w.double(), b.double())
    torch.testing.assert_close(y.double(), y_ref, atol=1e-4, rtol=1e-5)
    grads = torch.autograd.grad(y.sum(), (x, w, b))
    refs = torch.autograd.grad(y_ref.sum(), (x, w, b))
    for g, g_ref in zip(grads, refs):
        assert g.shape == g_ref.shape
        torch.testing.assert_close(g.double(), g_ref.double(), atol=1e-3, rtol=1e-5)


def test_overlapping_input_rows():
    """as_strided with overlapping rows (each row one element further) is read, not rejected."""
    storage = r(40)
    x = storage.as_strided((30, 8), (1, 1))
    w = r(6, 8)
    torch.testing.assert_close(forward(x, w, None), F.linear(x, w))


# devices: other GPUs

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cpu_input_cuda_weight():
    with pytest.raises(RuntimeError, match=r"input is on cpu but weight is on cuda:0"):
        functional.linear(r(2, 3), r(4, 3, device="cuda"))


@pytest.mark.skipif(torch.cuda.device_count() < 2 or not linear_ext.WITH_CUDA, reason="needs 2 GPUs and the CUDA kernels")
def test_weight_on_another_gpu():
    with pytest.raises(RuntimeError, match=r"input is on cuda:0 but weight is on cuda:1"):
        functional.linear(r(2, 3, device="cuda:0"), r(4, 3, device="cuda:1"))
    with pytest.raises(RuntimeError, match=r"grad_out is on cuda:1 but weight is on cuda:0"):
        backward_input(r(2, 4, device="cuda:1"), r(4, 3, device="cuda:0"))
    layer = linear_ext.Linear(3, 4, device="cuda:1")
    with pytest.raises(RuntimeError, match=r"input is on cuda:0 but weight is on cuda:1"):
        layer(r(2, 3, device="cuda:0"))
    # and on the right device, a non-current GPU computes correctly
    x = r(5, 3, device="cuda:1")
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
