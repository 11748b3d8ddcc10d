"""replace_linear / to_torch_linear on real model structures: same numbers, same objects, same hooks."""

import copy
import io

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

import linear_ext
from linear_ext import replace_linear, to_torch_linear
from models import encoder_batch, encoder_loss, mlp, tiny_encoder

# Error allowed relative to the largest magnitude among the compared tensors (outputs, or all grads):
# a few units of the dtype's rounding after a handful of chained GEMMs. Some grads are exactly zero
# in exact arithmetic (the key projection's bias, which softmax cancels), so a plain relative
# tolerance would compare rounding noise with rounding noise.
_TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float16: 3e-3}


def assert_all_close(actual, expected, dtype):
    scale = max(float(e.detach().abs().max()) for e in expected)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=_TOL[dtype], atol=_TOL[dtype] * scale)


def linear_types(model):
    return [type(m) for m in model.modules() if isinstance(m, nn.Linear)]


def run_encoder(model, batch):
    outputs = model(batch[0])
    encoder_loss(outputs, batch).backward()
    return list(outputs), [p.grad for p in model.parameters()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_converted_encoder_matches_original(dtype):
    original = tiny_encoder().to(dtype)
    converted = replace_linear(copy.deepcopy(original))
    assert linear_types(converted) == [linear_ext.Linear] * 14  # 2 × (4 attention + 2 FFN) + LM + cls
    batch = encoder_batch()
    expected_outputs, expected_grads = run_encoder(original, batch)
    outputs, grads = run_encoder(converted, batch)
    assert_all_close(outputs, expected_outputs, dtype)
    assert_all_close(grads, expected_grads, dtype)


def test_converted_mlp_matches_original():
    original = mlp()
    converted = replace_linear(copy.deepcopy(original))
    assert linear_types(converted) == [linear_ext.Linear] * 3
    x = torch.randn(4, 6, 20)
    results = []
    for model in (original, converted):
        y = model(x)
        y.square().mean().backward()
        results.append([y] + [p.grad for p in model.parameters()])
    assert_all_close(results[1], results[0], torch.float32)


def test_conversion_keeps_objects_parameters_and_their_attributes():
    model = tiny_encoder()
    model.layers[0].ffn[0].requires_grad_(False)  # a frozen layer stays frozen
    model.layers[1].attn.q_proj.note = "user attribute"
    model.eval()
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}

    assert replace_linear(model) is model
    assert dict(model.named_modules()) == modules  # the same objects, under the same names
    assert all(a is b for a, b in zip(dict(model.named_parameters()).values(), params.values(), strict=True))
    assert not model.layers[0].ffn[0].weight.requires_grad and model.layers[0].attn.q_proj.weight.requires_grad
    assert model.layers[1].attn.q_proj.note == "user attribute"
    assert not any(m.training for m in model.modules())
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    new_state = model.state_dict()
    assert list(new_state) == list(state) and all(torch.equal(new_state[k], state[k]) for k in state)


def test_optimizer_created_before_the_conversion_keeps_working():
    # SGD with momentum rather than Adam: Adam turns the rounding noise in the exactly-zero grads
    # (the key bias) into ±lr steps, which would compare noise, not the optimizer's bookkeeping.
    reference, model = tiny_encoder(), tiny_encoder()
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (reference, model)]
    batch = encoder_batch()

    def step(m, opt):
        opt.zero_grad()
        encoder_loss(m(batch[0]), batch).backward()
        opt.step()

    for _ in range(2):
        for m, opt in zip((reference, model), optimizers):
            step(m, opt)
    opt = optimizers[1]
    momentum = {p: opt.state[p]["momentum_buffer"] for p in model.parameters()}
    replace_linear(model)
    params = list(model.parameters())
    assert [p for group in opt.param_groups for p in group["params"]] == params
    assert all(opt.state[p]["momentum_buffer"] is momentum[p] for p in params)
    for _ in range(3):
        step(reference, optimizers[0])
        step(model, opt)
    assert_all_close(params, list(reference.parameters()), torch.float32)
    assert_all_close([opt.state[p]["momentum_buffer"] for p in params],
                     [optimizers[0].state[p]["momentum_buffer"] for p in reference.parameters()], torch.float32)


@pytest.mark.parametrize("include, exclude, converted", [
    (None, None, "all"),
    ("*.q_proj", None, ["layers.0.attn.q_proj", "layers.1.attn.q_proj"]),
    (["layers.1.*", "heads.cls"], None,
     ["layers.1.attn.q_proj", "layers.1.attn.k_proj", "layers.1.attn.v_proj", "layers.1.attn.out_proj",
      "layers.1.ffn.0", "layers.1.ffn.2", "heads.cls"]),
    ("layers.[01].ffn.*", "*.2", ["layers.0.ffn.0", "layers.1.ffn.0"]),
    (None, ["*attn*", "heads.*"], ["layers.0.ffn.0", "layers.0.ffn.2", "layers.1.ffn.0", "layers.1.ffn.2"]),
    ("layers.0.attn", None, []),   # names match whole: the attention block is not a Linear, and
    ("q_proj", None, []),          # a bare attribute name does not match a qualified one
    ([], None, []),                # an empty include selects nothing
    ("*", "*", []),                # exclude wins
])
def test_include_exclude_patterns(include, exclude, converted):
    model = tiny_encoder()
    linear_names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    replace_linear(model, include=include, exclude=exclude)
    expected = set(linear_names) if converted == "all" else set(converted)
    actual = {n for n, m in model.named_modules() if type(m) is linear_ext.Linear}
    assert actual == expected
    assert all(type(m) is nn.Linear for n, m in model.named_modules() if n in set(linear_names) - expected)


def test_a_shared_module_is_judged_by_all_its_names():
    shared = nn.Linear(4, 4)
    model = nn.ModuleDict({"encoder": nn.Sequential(shared), "decoder": nn.Sequential(shared)})
    replace_linear(model, exclude="decoder.*")
    assert type(shared) is nn.Linear  # excluded under one of its names
    replace_linear(model, include="encoder.*")
    assert type(model["encoder"][0]) is type(model["decoder"][0]) is linear_ext.Linear


def test_hooks_registered_before_the_conversion_still_fire():
    model = mlp()
    layer = model[3]
    calls = []
    handles = [
        layer.register_forward_pre_hook(lambda m, args: calls.append("pre")),
        layer.register_forward_hook(lambda m, args, out: calls.append("forward")),
        layer.register_full_backward_hook(lambda m, gin, gout: calls.append("backward")),
        layer.weight.register_hook(lambda g: calls.append("weight grad")),
        layer.register_state_dict_post_hook(lambda m, sd, prefix, local: calls.append("state_dict")),
    ]
    replace_linear(model)
    assert type(layer) is linear_ext.Linear
    model(torch.randn(3, 20)).sum().backward()
    model.state_dict()
    assert sorted(calls) == sorted(["pre", "forward", "backward", "weight grad", "state_dict"])
    calls.clear()
    for handle in handles:
        handle.remove()
    model(torch.randn(3, 20)).sum().backward()
    assert calls == []


def test_tied_weights_stay_tied():
    original = tiny_encoder()
    model = replace_linear(copy.deepcopy(original))
    assert type(model.heads["lm"]) is linear_ext.Linear
    assert model.heads["lm"].weight is model.embed.weight
    assert len(list(model.parameters())) == len(list(original.parameters()))
    batch = encoder_batch()
    run_encoder(original, batch)
    run_encoder(model, batch)
    # The shared weight's one grad sums the embedding's and the LM head's contributions, as before.
    assert model.heads["lm"].weight.grad is model.embed.weight.grad
    assert_all_close([model.embed.weight.grad], [original.embed.weight.grad], torch.float32)


def test_round_trip_back_to_nn_linear():
    original = tiny_encoder()
    model = copy.deepcopy(original)
    assert to_torch_linear(replace_linear(model)) is model
    assert linear_types(model) == linear_types(original) == [nn.Linear] * 14
    tokens = encoder_batch()[0]
    for a, b in zip(model(tokens), original(tokens)):
        assert torch.equal(a, b)  # the same layers and parameters, so bitwise the same result
    replace_linear(model)
    to_torch_linear(model, include="layers.0.*")
    assert {n for n, m in model.named_modules() if type(m) is nn.Linear} == {
        f"layers.0.{n}" for n in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "ffn.0", "ffn.2")}


def test_a_bare_linear_as_the_root():
    layer = nn.Linear(5, 3)
    weight = layer.weight
    assert replace_linear(layer) is layer and type(layer) is linear_ext.Linear and layer.weight is weight
    x = torch.randn(2, 5)
    torch.testing.assert_close(layer(x), nn.functional.linear(x, layer.weight, layer.bias))
    assert type(to_torch_linear(layer, include="*")) is nn.Linear
    assert type(replace_linear(layer, include="something.else")) is nn.Linear  # the root's name is ""


def test_subclasses_are_left_alone_and_conversion_is_idempotent():
    class Scaled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    lazy = nn.LazyLinear(3)
    model = nn.Sequential(nn.Linear(4, 4), Scaled(4, 4), nn.MultiheadAttention(4, 2), lazy)
    replace_linear(model)
    replace_linear(model)
    assert type(model[0]) is linear_ext.Linear
    assert type(model[1]) is Scaled
    # MultiheadAttention reads out_proj's parameters itself and never calls it as a module.
    assert type(model[2].out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear
    assert type(lazy) is nn.LazyLinear
    lazy(torch.randn(2, 4))  # materialises, becoming an nn.Linear
    assert type(replace_linear(model)[3]) is linear_ext.Linear


def test_parametrized_linear_is_converted_and_unwraps_to_ours():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2))
    parametrizations.weight_norm(model[2])
    twin = copy.deepcopy(model)  # a deep copy shares the generated class with the original
    x = torch.randn(3, 6)
    expected = model(x)
    replace_linear(model)
    assert isinstance(model[2], linear_ext.Linear) and parametrize.is_parametrized(model[2])
    assert parametrize.type_before_parametrizations(model[2]) is linear_ext.Linear
    assert parametrize.type_before_parametrizations(twin[2]) is nn.Linear  # the shared class was not edited
    torch.testing.assert_close(model(x), expected)
    model(x).sum().backward()
    assert model[2].parametrizations.weight.original0.grad is not None
    parametrize.remove_parametrizations(model[2], "weight")
    assert type(model[2]) is linear_ext.Linear
    torch.testing.assert_close(model(x), expected)


def test_whole_model_pickles_and_loads_into_either_layer_type():
    model = replace_linear(mlp())
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert linear_types(loaded) == [linear_ext.Linear] * 3
    plain = mlp(seed=1)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 20)
    torch.testing.assert_close(plain(x), model(x))


def test_argument_errors():
    with pytest.raises(TypeError, match="expected an nn.Module"):
        replace_linear(torch.randn(3))
    with pytest.raises(TypeError, match="include must be a string or an iterable of strings"):
        replace_linear(mlp(), include=["ok", 3])
    with pytest.raises(TypeError, match="positional"):
        replace_linear(mlp(), "*")
