"""Data-parallel training of converted models: DDP, FSDP2 (fully_shard) and FSDP1, gloo on localhost.

Two processes each train on half of a batch; their gradients and parameters must equal those of
one process training on the whole batch (the per-rank losses are means over equal halves, so their
average is the whole batch's mean). One spawn runs every scenario, to pay for starting two Python
processes with torch once; each test then checks one scenario's results.
"""

import datetime
import traceback
import warnings
from dataclasses import dataclass

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from linear_ext import replace_linear, to_torch_linear
from models import EncoderLayer, TinyEncoder, encoder_batch, encoder_loss, tiny_encoder

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")

WORLD = 2
STEPS = 3
DTYPE = torch.float64  # tight comparisons: the two sides sum the batch in different orders


class ResidualMLP(nn.Module):
    """(B, 12) -> (B, 3): blocks whose output, that of a Linear, gets the residual added in place."""

    def __init__(self, dim=16, blocks=2):
        super().__init__()
        self.inp = nn.Linear(12, dim)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, dim))
                                    for _ in range(blocks))
        self.out = nn.Linear(dim, 3)

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            y = block(h)
            y += h
            h = y.relu()
        return self.out(h)


def encoder_task():
    torch.manual_seed(0)
    return replace_linear(tiny_encoder(dim=16, heads=2, layers=2)).to(DTYPE), encoder_batch(batch=2 * WORLD, seq=8)


def residual_mlp_task():
    torch.manual_seed(0)
    model = replace_linear(ResidualMLP()).to(DTYPE)
    return model, (torch.randn(2 * WORLD, 12, dtype=DTYPE), torch.randint(0, 3, (2 * WORLD,)))


def residual_mlp_loss(output, batch):
    return nn.functional.cross_entropy(output, batch[1])


@dataclass(frozen=True)
class Scenario:
    task: str  # "encoder" or "residual_mlp"
    wrapper: str  # "ddp", "fsdp2" or "fsdp1"
    torch_layers: bool = False  # the control: the same model with nn.Linear


TASKS = {"encoder": (encoder_task, encoder_loss), "residual_mlp": (residual_mlp_task, residual_mlp_loss)}
# The residual_mlp scenarios shard every block, so that a block's output (a Linear's) leaves its
# FSDP unit and is then modified in place, a pattern FSDP's output hooks must survive.
SCENARIOS = {
    "ddp": Scenario("encoder", "ddp"),
    "fsdp2": Scenario("encoder", "fsdp2"),
    "fsdp1": Scenario("encoder", "fsdp1"),
    "ddp_inplace": Scenario("residual_mlp", "ddp"),
    "fsdp2_inplace_torch": Scenario("residual_mlp", "fsdp2", torch_layers=True),
    "fsdp1_inplace_torch": Scenario("residual_mlp", "fsdp1", torch_layers=True),
    # Last: scenarios that fail (on both ranks alike) must not leave a collective pending before others.
    "fsdp2_inplace": Scenario("residual_mlp", "fsdp2"),
    "fsdp1_inplace": Scenario("residual_mlp", "fsdp1"),
}


def shard_units(model):
    """The submodules each FSDP unit owns, besides the root's remainder."""
    return list(model.layers) if isinstance(model, TinyEncoder) else list(model.blocks)


def train(model, batch, loss_fn, grads_of=None, params_of=None):
    """(grads after the first backward, parameters after STEPS SGD steps), by parameter name.
    grads_of/params_of gather them from the model (and from sharded storage where needed)."""
    grads_of = grads_of or (lambda m: {n: p.grad for n, p in m.named_parameters()})
    params_of = params_of or (lambda m: dict(m.named_parameters()))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    first_grads = None
    for _ in range(STEPS):
        opt.zero_grad()
        loss_fn(model(batch[0]), batch).backward()
        if first_grads is None:
            first_grads = {n: g.detach().clone() for n, g in grads_of(model).items()}
        opt.step()
    return first_grads, {n: p.detach().clone() for n, p in params_of(model).items()}


def run_scenario(scenario: Scenario, rank: int):
    make_task, loss_fn = TASKS[scenario.task]
    model, batch = make_task()
    if scenario.torch_layers:
        to_torch_linear(model)
    batch = tuple(t.chunk(WORLD)[rank] for t in batch)

    if scenario.wrapper == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        grads, params = train(DistributedDataParallel(model), batch, loss_fn)
    elif scenario.wrapper == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (WORLD,))
        for unit in shard_units(model):
            fully_shard(unit, mesh=mesh)
        fully_shard(model, mesh=mesh)  # the root: what no unit owns (embedding, tied LM head, ...)
        grads, params = train(model, batch, loss_fn,
                              grads_of=lambda m: {n: p.grad.full_tensor() for n, p in m.named_parameters()},
                              params_of=lambda m: {n: p.full_tensor() for n, p in m.named_parameters()})
    else:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        units = {EncoderLayer} if scenario.task == "encoder" else {nn.Sequential}
        fsdp = FSDP(model, device_id=torch.device("cpu"), auto_wrap_policy=ModuleWrapPolicy(units),
                    use_orig_params=True)

        def full(m, with_grads):
            with FSDP.summon_full_params(m, with_grads=with_grads):
                return {n: (p.grad if with_grads else p).detach().clone() for n, p in m.named_parameters()}

        grads, params = train(fsdp, batch, loss_fn, grads_of=lambda m: full(m, True),
                              params_of=lambda m: full(m, False))
    return _strip(grads), _strip(params)


def _strip(named):
    """The original model's parameter names, without DDP's and FSDP1's wrapper prefixes."""
    return {n.replace("_fsdp_wrapped_module.", "").removeprefix("module."): t for n, t in named.items()}


def worker(rank, port, out_dir):
    torch.set_num_threads(1)  # two processes on a small machine
    warnings.filterwarnings("ignore")  # FSDP1's deprecation notice, FSDP2's view-output notice
    store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=datetime.timedelta(seconds=60))
    dist.init_process_group("gloo", store=store, rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))
    try:
        for name, scenario in SCENARIOS.items():
            try:
                grads, params = run_scenario(scenario, rank)
                result = {"grads": grads, "params": params}
            except Exception:
                result = {"error": traceback.format_exc()}
            torch.save(result, out_dir / f"{name}-rank{rank}.pt")
            dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("distributed")
    # The parent holds the rendezvous store on a port the OS picks, so no port can be taken meanwhile.
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    mp.spawn(worker, args=(store.port, out_dir), nprocs=WORLD, join=True)
    return {s: [torch.load(out_dir / f"{s}-rank{r}.pt") for r in range(WORLD)] for s in SCENARIOS}


@pytest.fixture(scope="module")
def references():
    """Single-process training on the whole batch, per task."""
    refs = {}
    for task, (make_task, loss_fn) in TASKS.items():
        model, batch = make_task()
        refs[task] = train(model, batch, loss_fn)
    return refs


def check(name, results, references):
    ref_grads, ref_params = references[SCENARIOS[name].task]
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for rank, result in enumerate(results[name]):
        assert "error" not in result, f"rank {rank} failed:\n{result['error']}"
        assert result["grads"].keys() == ref_grads.keys()
        for n, g in result["grads"].items():
            # Relative to the largest grad: some grads (the key bias) are rounding noise around zero.
            torch.testing.assert_close(g, ref_grads[n], rtol=1e-10, atol=1e-12 * scale, msg=f"grad of {n}")
        for n, p in result["params"].items():
            torch.testing.assert_close(p, ref_params[n], rtol=1e-10, atol=1e-12, msg=f"{n} after {STEPS} steps")


@pytest.mark.parametrize("name", ["ddp", "ddp_inplace"])
def test_ddp_matches_single_process_training(name, results, references):
    check(name, results, references)
    # The replicas stay bitwise in sync: DDP gives every rank the same averaged gradient.
    for n, p in results[name][0]["params"].items():
        assert torch.equal(p, results[name][1]["params"][n])


@pytest.mark.parametrize("name", ["fsdp2", "fsdp2_inplace_torch"])
def test_fsdp2_fully_shard_matches_single_process_training(name, results, references):
    check(name, results, references)


@pytest.mark.parametrize("name", ["fsdp1", "fsdp1_inplace_torch"])
def test_fsdp1_matches_single_process_training(name, results, references):
    check(name, results, references)


@pytest.mark.parametrize("name", ["fsdp2_inplace", "fsdp1_inplace"])
def test_fsdp_inplace_residual_on_our_output(name, results, references):
    """An in-place residual onto our layer's output keeps FSDP's output hooks (it is not a view)."""
    check(name, results, references)
