"""Converting existing models: nn.Linear layers become linear_ext.Linear, and back.

replace_linear(model) retypes each selected nn.Linear in place (`module.__class__ = Linear`).
linear_ext.Linear adds no state and no __init__ of its own, so the retyped object is exactly the
layer it was, now running our kernels: the same object in its parent (and anywhere else it is
referenced), the same Parameter objects (optimizers, tied weights and weights shared with other
modules stay valid), device, dtype, requires_grad, training flag, every hook and any attribute a
user set. Building a new module and copying the old one's fields would lose some of these.

What is converted: modules whose type is exactly nn.Linear (or, for to_torch_linear, exactly
linear_ext.Linear), also when wrapped by torch.nn.utils.parametrize (weight_norm, spectral_norm,
orthogonal; their class is a per-module subclass generated for that module). Subclasses are left
alone: a subclass may override forward or add state we know nothing of, and some are never called
as modules at all, e.g. nn.MultiheadAttention's out_proj (NonDynamicallyQuantizableLinear), whose
weight the attention op reads directly; so in torch's nn.Transformer* layers only the feed-forward
linear1/linear2 switch. An nn.LazyLinear becomes an nn.Linear on its first forward; convert after that.

Order with wrappers: convert before FSDP's fully_shard, which retypes each sharded module to a
generated FSDP subclass that is then left alone. DDP keeps the same modules and parameters, so
either order works. Converting a model after torch.compile works, but costs a recompilation on the
next call (Dynamo guards on the module types).
"""

import fnmatch
from collections.abc import Iterable

from torch import nn
from torch.nn.utils import parametrize

from .modules import Linear

Patterns = str | Iterable[str] | None

__all__ = ["replace_linear", "to_torch_linear"]


def replace_linear(module: nn.Module, *, include: Patterns = None, exclude: Patterns = None) -> nn.Module:
    """Turns the nn.Linear layers in `module` (the root included) into linear_ext.Linear, in place.

    include, exclude: shell-style patterns (fnmatch.fnmatchcase: `*` matches any run of characters,
    dots included, `?` one character, `[...]` a set) matched against a layer's qualified name as
    named_modules() spells it, e.g. "encoder.layers.0.attn.q_proj"; the root's own name is "".
    A single string is one pattern. A layer is converted when one of its names matches an include
    pattern (include=None selects every layer) and none of its names matches an exclude pattern.
    A layer reachable under several names is one object and is converted once, for all its names.

    Returns `module`, for chaining.
    """
    _retype(module, nn.Linear, Linear, include, exclude)
    return module


def to_torch_linear(module: nn.Module, *, include: Patterns = None, exclude: Patterns = None) -> nn.Module:
    """The inverse of replace_linear: linear_ext.Linear layers become plain nn.Linear, in place.

    Same selection rules and guarantees as replace_linear. Returns `module`.
    """
    _retype(module, Linear, nn.Linear, include, exclude)
    return module


def _as_patterns(patterns: Patterns, arg: str) -> tuple[str, ...] | None:
    if patterns is None:
        return None
    if isinstance(patterns, str):
        return (patterns,)
    patterns = tuple(patterns)
    bad = [p for p in patterns if not isinstance(p, str)]
    if bad:
        raise TypeError(f"{arg} must be a string or an iterable of strings, got {bad!r} among them")
    return patterns


def _retype(root: nn.Module, old: type, new: type, include: Patterns, exclude: Patterns) -> None:
    if not isinstance(root, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(root).__name__}")
    include = _as_patterns(include, "include")
    exclude = _as_patterns(exclude, "exclude")

    def matches(names, patterns):
        return any(fnmatch.fnmatchcase(name, p) for name in names for p in patterns)

    # All names of every module first: a shared module is judged by all of them at once.
    names: dict[int, tuple[nn.Module, list[str]]] = {}
    for name, m in root.named_modules(remove_duplicate=False):
        if _base_type(m) is old:
            names.setdefault(id(m), (m, []))[1].append(name)
    for m, module_names in names.values():
        if include is not None and not matches(module_names, include):
            continue
        if exclude is not None and matches(module_names, exclude):
            continue
        _set_base_type(m, new)


def _base_type(m: nn.Module) -> type:
    """The class a module was written as: parametrize hides it under a generated subclass."""
    if parametrize.is_parametrized(m) and _is_parametrize_class(type(m)):
        return type(m).__bases__[0]
    return type(m)


def _is_parametrize_class(cls: type) -> bool:
    # parametrize's generated class: one base, named "Parametrized" + the base's name, and it defines
    # only __getstate__/__deepcopy__ and the parametrized tensors' properties.
    return len(cls.__bases__) == 1 and cls.__name__ == "Parametrized" + cls.__bases__[0].__name__


def _set_base_type(m: nn.Module, new: type) -> None:
    cls = type(m)
    if parametrize.is_parametrized(m):
        # A fresh generated class over the new base, with the same properties, for this module only:
        # a deep copy of a parametrized module shares its class, so that class must not be edited.
        namespace = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
        m.__class__ = type("Parametrized" + new.__name__, (new,), namespace)
    else:
        m.__class__ = new
