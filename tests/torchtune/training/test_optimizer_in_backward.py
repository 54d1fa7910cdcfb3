"""OptimizerInBackward against the ordinary step after backward (written out here with torch.optim),
and torchao's 8-bit AdamW against torch.optim.AdamW."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchtune.config import ConfigError, DictConfig
from torchtune.training import OptimizerInBackward, check_optimizer_in_bwd
from torchtune.training.checkpointing import restore_training_state, save_recipe_state

VOCAB, DIM = 64, 128


class TiedLM(nn.Module):
    """Embedding, two MLP layers and an output projection tied to the embedding (one parameter
    used twice, so its gradient has two contributions)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, DIM)
        self.up = nn.Linear(DIM, 2 * DIM)
        self.down = nn.Linear(2 * DIM, DIM, bias=False)
        self.norm = nn.LayerNorm(DIM)
        nn.init.normal_(self.emb.weight, std=0.02)  # as language models start: logits near 0

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.emb(tokens)  # [b, s, d]
        h = h + self.down(F.gelu(self.up(h)))
        return F.linear(self.norm(h), self.emb.weight)  # [b, s, v]


def batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        tokens = torch.randint(0, VOCAB, (2, 12), generator=g)
        labels = (3 * tokens + 1) % VOCAB  # a mapping the model can learn
        labels[0, :3] = -100  # some positions carry no label
        out.append((tokens, labels))
    return out


def summed_loss(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    logits = model(tokens)
    n = int((labels != -100).sum())
    return F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), reduction="sum"), n


def build(make_optimizer, seed: int = 0):
    torch.manual_seed(seed)
    model = TiedLM()
    optimizer = make_optimizer(model.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: min(1.0, (t + 1) / 3))
    return model, optimizer, schedule


def train_default(model, optimizer, schedule, data) -> tuple[list[float], list[float]]:
    """The usual order: backward, scale every gradient by 1 / tokens, step, zero, schedule."""
    losses, norms = [], []
    for tokens, labels in data:
        loss, n = summed_loss(model, tokens, labels)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p.grad.mul_(1.0 / n)
        norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        losses.append(loss.item() / n)
    return losses, norms


def train_in_bwd(model, in_bwd, schedule, data) -> tuple[list[float], list[float]]:
    losses, norms = [], []
    for tokens, labels in data:
        loss, n = summed_loss(model, tokens, labels)
        in_bwd.prepare(grad_scale=1.0 / n)
        loss.backward()
        norms.append(float(in_bwd.grad_norm()))
        schedule.step()
        losses.append(loss.item() / n)
    return losses, norms


def adamw(params):
    return torch.optim.AdamW(params, lr=3e-3, weight_decay=0.1)


def test_same_losses_and_weights_as_the_step_after_backward():
    data = batches(6)
    ref_model, ref_opt, ref_sched = build(adamw)
    ref_losses, ref_norms = train_default(ref_model, ref_opt, ref_sched, data)

    model, optimizer, schedule = build(adamw)
    in_bwd = OptimizerInBackward(optimizer)
    losses, norms = train_in_bwd(model, in_bwd, schedule, data)

    assert losses == ref_losses  # the same arithmetic on the same gradients: bit for bit
    for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
        assert torch.equal(p, q), name
    assert norms == pytest.approx(ref_norms, rel=1e-5)  # summed in another order
    assert ref_losses[-1] < ref_losses[0]
    assert float(optimizer.param_groups[0]["lr"]) == float(ref_opt.param_groups[0]["lr"])
    assert all(p.grad is None for p in model.parameters())  # nothing left behind after backward


class CountingSGD(torch.optim.SGD):
    """SGD that records how many parameters hold a gradient whenever it steps."""

    def __init__(self, params, **kwargs) -> None:
        super().__init__(params, **kwargs)
        self.with_grad: list[int] = []
        self.all_params = [p for g in self.param_groups for p in g["params"]]

    def step(self, closure=None):
        self.with_grad.append(sum(p.grad is not None for p in self.all_params))
        return super().step(closure)


def test_each_parameter_steps_once_with_only_its_gradient_alive():
    model, optimizer, _ = build(lambda ps: CountingSGD(ps, lr=0.1))
    in_bwd = OptimizerInBackward(optimizer)
    tokens, labels = batches(1)[0]
    loss, n = summed_loss(model, tokens, labels)
    in_bwd.prepare(1.0 / n)
    loss.backward()
    assert optimizer.with_grad == [1] * len(list(model.parameters()))  # the tied weight once, not twice


def test_resume_from_saved_state_is_exact(tmp_path):
    data = batches(6, seed=1)
    whole_model, whole_opt, whole_sched = build(adamw)
    train_in_bwd(whole_model, OptimizerInBackward(whole_opt), whole_sched, data)

    model, optimizer, schedule = build(adamw)
    in_bwd = OptimizerInBackward(optimizer)
    train_in_bwd(model, in_bwd, schedule, data[:3])
    save_recipe_state(tmp_path, step=3, epoch=0, optimizer=in_bwd, lr_scheduler=schedule)
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    model, optimizer, schedule = build(adamw, seed=99)  # other initial weights, fresh state
    model.load_state_dict(weights)
    in_bwd = OptimizerInBackward(optimizer)
    assert restore_training_state(tmp_path, in_bwd, schedule)[0] == 3
    train_in_bwd(model, in_bwd, schedule, data[3:])
    for (name, p), q in zip(model.named_parameters(), whole_model.parameters()):
        assert torch.equal(p, q), name


def test_remove_gives_back_the_manual_step():
    model, optimizer, _ = build(adamw)
    in_bwd = OptimizerInBackward(optimizer)
    in_bwd.remove()
    tokens, labels = batches(1)[0]
    summed_loss(model, tokens, labels)[0].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_frozen_parameter_is_refused():
    layer = nn.Linear(2, 2)
    layer.bias.requires_grad_(False)
    with pytest.raises(ValueError, match=r"shape \(2,\) does not require grad"):
        OptimizerInBackward(torch.optim.SGD(layer.parameters(), lr=0.1))


@pytest.mark.parametrize("overrides, message", [
    ({"clip_grad_norm": 1.0}, r"cannot be clipped.*clip_grad_norm=1\.0.*Set clip_grad_norm: null"),
    ({"gradient_accumulation_steps": 4}, r"cannot accumulate.*gradient_accumulation_steps=4.*Set gradient_accumulation_steps: 1"),
    ({"optimizer_in_bwd": "yes"}, r"optimizer_in_bwd \(config\) must be true or false, got 'yes'"),
])
def test_config_conflicts_name_the_keys(overrides, message):
    cfg = DictConfig({"optimizer_in_bwd": True, "clip_grad_norm": None, "gradient_accumulation_steps": 1, **overrides})
    with pytest.raises(ConfigError, match=message):
        check_optimizer_in_bwd(cfg)


def test_config_without_the_key_or_with_false_is_off():
    assert check_optimizer_in_bwd(DictConfig({"clip_grad_norm": 1.0, "gradient_accumulation_steps": 8})) is False
    assert check_optimizer_in_bwd(DictConfig({"optimizer_in_bwd": False, "clip_grad_norm": 1.0})) is False
    assert check_optimizer_in_bwd(DictConfig({"optimizer_in_bwd": True, "clip_grad_norm": None,
                                              "gradient_accumulation_steps": 1})) is True


# ----- torchao 8-bit AdamW -------------------------------------------------------------------------
# torchao quantises a state tensor only when it has >= 4096 values and a multiple of block_size
# (256): here emb [64, 128] (8192), up [256, 128] (32768) and down [128, 256]; the biases and the
# norm stay fp32. Its step is a torch.compile'd function; on CPU the compile takes about a minute,
# so these tests run it eagerly (the same operations).


@pytest.fixture
def eager():
    torch.compiler.set_stance("force_eager")
    yield
    torch.compiler.set_stance("default")


def adamw8bit(params):
    from torchao.optim import AdamW8bit

    return AdamW8bit(params, lr=3e-3, weight_decay=0.1)


def test_adamw8bit_losses_close_to_adamw_with_quantised_state(eager):
    from torchao.optim.subclass_8bit import OptimState8bit

    data = batches(8, seed=2)
    ref_losses, _ = train_default(*build(adamw), data)
    model, optimizer, schedule = build(adamw8bit)
    losses, _ = train_default(model, optimizer, schedule, data)

    kinds = {name: type(optimizer.state[p]["exp_avg"]) for name, p in model.named_parameters()}
    assert kinds["emb.weight"] is kinds["up.weight"] is kinds["down.weight"] is OptimState8bit
    assert kinds["up.bias"] is kinds["norm.weight"] is torch.Tensor
    # Block-wise 8-bit moments carry ~1 % relative error per element, so each update is AdamW's
    # up to that. Over 8 steps the per-token losses (which fall by ~0.9) stay within 2.2e-4 of
    # AdamW's here; the bound 5e-4 is below what a real change to the update does on this data
    # (no weight decay: 1.2e-3; lr 10 % higher: 5e-2), and an unquantised run would be equal.
    assert losses[0] == ref_losses[0]
    assert losses[1:] != ref_losses[1:]
    assert losses == pytest.approx(ref_losses, abs=5e-4)
    assert ref_losses[0] - ref_losses[-1] > 0.5


def test_adamw8bit_state_is_a_quarter_of_fp32_state(eager):
    model, optimizer, schedule = build(adamw8bit)
    train_default(model, optimizer, schedule, batches(1))
    ref_model, ref_opt, ref_sched = build(adamw)
    train_default(ref_model, ref_opt, ref_sched, batches(1))

    def state_bytes(opt, name_of):
        total = {}
        for p, state in opt.state.items():
            for key in ("exp_avg", "exp_avg_sq"):
                t = state[key]
                parts = [t.codes, t.scale, t.qmap] if hasattr(t, "codes") else [t]
                total[name_of[p]] = total.get(name_of[p], 0) + sum(x.numel() * x.element_size() for x in parts)
        return total

    ours = state_bytes(optimizer, {p: n for n, p in model.named_parameters()})
    ref = state_bytes(ref_opt, {p: n for n, p in ref_model.named_parameters()})
    # codes 1 byte per value + one fp32 scale per 256 values + a 256-entry fp32 map, vs 4 bytes
    for name in ("emb.weight", "up.weight", "down.weight"):
        p = dict(model.named_parameters())[name]
        assert ours[name] == 2 * (p.numel() + 4 * p.numel() // 256 + 4 * 256), name
        assert ours[name] < 0.3 * ref[name]
    assert ours["norm.weight"] == ref["norm.weight"]  # too small to quantise


def test_adamw8bit_in_backward_and_resume_are_exact(eager, tmp_path):
    data = batches(6, seed=3)
    ref_model, ref_opt, ref_sched = build(adamw8bit)
    train_default(ref_model, ref_opt, ref_sched, data)

    model, optimizer, schedule = build(adamw8bit)
    in_bwd = OptimizerInBackward(optimizer)
    train_in_bwd(model, in_bwd, schedule, data[:3])
    save_recipe_state(tmp_path, step=3, epoch=0, optimizer=optimizer, lr_scheduler=schedule)
    assert "torchao.optim.subclass_8bit.OptimState8bit" in (tmp_path / "recipe_state.json").read_text()
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    model, optimizer, schedule = build(adamw8bit, seed=5)
    model.load_state_dict(weights)
    in_bwd = OptimizerInBackward(optimizer)
    restore_training_state(tmp_path, optimizer, schedule)
    train_in_bwd(model, in_bwd, schedule, data[3:])
    for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
        assert torch.equal(p, q), name

