// The op schemas of namespace linear_ext: the single source of truth for every op's signature.
// Device files register implementations (TORCH_LIBRARY_IMPL); the dispatcher picks the device.
//
//   linear_forward(X (M,K), W (N,K), b (N,)?)            -> Y  (M,N) = X·Wᵀ + b
//   linear_backward_input(dY (M,N), W (N,K))              -> dX (M,K) = dY·W
//   linear_backward_weight(dY (M,N), X (M,K), bias_grad)  -> dW (N,K) = dYᵀ·X,
//                                                            db (N,)  = Σ_m dY  if bias_grad, else shape (0,)
#include <Python.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/library.h>

#include "cpu/block_sizes.h"
#include "cpu/kernels/kernels.h"
#include "op_handles.h"

// The Python module linear_ext._C: importing it loads this library and runs the registrations.
// It reports which CPU micro-kernels were selected (for benchmarks and bug reports), and has a
// direct entry to each op for plain tensors (linear_ext/ops.py): the unboxed dispatcher call that
// torch's own bindings make, rather than torch.ops' boxed one, which costs a few µs more per call.
namespace {

namespace handles = linear_ext::op_handles;

PyObject* cpu_isa(PyObject*, PyObject*) {
  try {
    return PyUnicode_FromString(linear_ext::cpu::cpu_kernels().isa);
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

PyObject* cpu_l3_bytes(PyObject*, PyObject*) { return PyLong_FromLongLong(linear_ext::cpu::l3_cache_bytes()); }

PyObject* cpu_bf16_dot(PyObject*, PyObject*) {
  try {
    return PyBool_FromLong(linear_ext::cpu::bf16_pair_kernels() != nullptr);
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

// The tensor args[i]; ops.py passes only tensors (and None for an absent bias) here.
const at::Tensor& tensor_arg(PyObject* const* args, int i) {
  TORCH_CHECK_TYPE(THPVariable_Check(args[i]), "linear_ext._C: argument ", i, " must be a Tensor");
  return THPVariable_Unpack(args[i]);
}

void check_arg_count(const char* op, Py_ssize_t nargs, Py_ssize_t expected) {
  TORCH_CHECK_TYPE(nargs == expected, "linear_ext._C.", op, " takes ", expected, " arguments, got ", nargs);
}

// Each entry runs its op through the dispatcher (autograd, autocast, device kernels), and the GIL
// is released while it runs, as torch's own bindings do.
template <typename Fn>
auto without_gil(const Fn& fn) {
  pybind11::gil_scoped_release no_gil;
  return fn();
}

PyObject* linear_forward(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  check_arg_count("linear_forward", nargs, 3);
  const at::Tensor& input = tensor_arg(args, 0);
  const at::Tensor& weight = tensor_arg(args, 1);
  const std::optional<at::Tensor> bias = args[2] == Py_None ? std::nullopt : std::optional(tensor_arg(args, 2));
  return THPVariable_Wrap(without_gil([&] { return handles::linear_forward().call(input, weight, bias); }));
  END_HANDLE_TH_ERRORS
}

PyObject* linear_backward_input(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  check_arg_count("linear_backward_input", nargs, 2);
  const at::Tensor& grad_out = tensor_arg(args, 0);
  const at::Tensor& weight = tensor_arg(args, 1);
  return THPVariable_Wrap(without_gil([&] { return handles::linear_backward_input().call(grad_out, weight); }));
  END_HANDLE_TH_ERRORS
}

PyObject* linear_backward_weight(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  check_arg_count("linear_backward_weight", nargs, 3);
  const at::Tensor& grad_out = tensor_arg(args, 0);
  const at::Tensor& input = tensor_arg(args, 1);
  TORCH_CHECK_TYPE(PyBool_Check(args[2]), "linear_ext._C.linear_backward_weight: bias_grad must be a bool");
  const bool bias_grad = args[2] == Py_True;
  auto grads = without_gil([&] { return handles::linear_backward_weight().call(grad_out, input, bias_grad); });
  PyObject* grad_weight = THPVariable_Wrap(std::move(std::get<0>(grads)));
  PyObject* grad_bias = THPVariable_Wrap(std::move(std::get<1>(grads)));
  PyObject* result = grad_weight && grad_bias ? PyTuple_Pack(2, grad_weight, grad_bias) : nullptr;
  Py_XDECREF(grad_weight);
  Py_XDECREF(grad_bias);
  return result;
  END_HANDLE_TH_ERRORS
}

PyMethodDef methods[] = {
    {"cpu_isa", cpu_isa, METH_NOARGS, "The ISA of the CPU micro-kernels in use: generic, avx2 or avx512."},
    {"cpu_l3_bytes", cpu_l3_bytes, METH_NOARGS, "The L3 size the CPU kernels' blocking assumes, in bytes."},
    {"cpu_bf16_dot", cpu_bf16_dot, METH_NOARGS,
     "Whether bfloat16 GEMMs run on AVX512_BF16 dot products (subnormal inputs and results flushed to zero)."},
    {"linear_forward", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(linear_forward)), METH_FASTCALL,
     "linear_forward(input, weight, bias) for plain tensors (bias may be None)."},
    {"linear_backward_input", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(linear_backward_input)),
     METH_FASTCALL, "linear_backward_input(grad_out, weight) for plain tensors."},
    {"linear_backward_weight", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(linear_backward_weight)),
     METH_FASTCALL, "linear_backward_weight(grad_out, input, bias_grad) for plain tensors."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(linear_ext, m) {
  m.def("linear_forward(Tensor input, Tensor weight, Tensor? bias) -> Tensor");
  m.def("linear_backward_input(Tensor grad_out, Tensor weight) -> Tensor");
  m.def("linear_backward_weight(Tensor grad_out, Tensor input, bool bias_grad) -> (Tensor, Tensor)");
}
