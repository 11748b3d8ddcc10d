// The op schemas of namespace linear_ext: the single source of truth for every op's signature.
// Device files register implementations (TORCH_LIBRARY_IMPL); the dispatcher picks the device.
//
//   linear_forward(X (M,K), W (N,K), b (N,)?)            -> Y  (M,N) = X·Wᵀ + b
//   linear_backward_input(dY (M,N), W (N,K))              -> dX (M,K) = dY·W
//   linear_backward_weight(dY (M,N), X (M,K), bias_grad)  -> dW (N,K) = dYᵀ·X,
//                                                            db (N,)  = Σ_m dY  if bias_grad, else shape (0,)
#include <Python.h>
#include <torch/library.h>

#include "cpu/kernels/kernels.h"

// The Python module linear_ext._C: importing it loads this library and runs the registrations.
// Its one function reports which CPU micro-kernels were selected (for benchmarks and bug reports).
namespace {

PyObject* cpu_isa(PyObject*, PyObject*) {
  try {
    return PyUnicode_FromString(linear_ext::cpu::cpu_kernels().isa);
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

PyMethodDef methods[] = {
    {"cpu_isa", cpu_isa, METH_NOARGS, "The ISA of the CPU micro-kernels in use: generic, avx2 or avx512."},
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
