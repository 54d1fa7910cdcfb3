"""Mixture-of-experts feed-forward: a top-k router, experts stored as stacked weight tensors, an
optional shared expert, and the router's load-balancing loss.

Notation: b batch, s sequence, n tokens (``b * s``), d embed dim, h expert hidden dim, E experts,
k experts per token.

The experts use the layout Hugging Face uses for Qwen3-MoE-style models in memory
(``gate_up_proj [E, 2h, d]``, ``down_proj [E, d, h]``), so checkpoints map by renaming and
stacking. Tokens are grouped by expert (one stable sort); the experts' matmuls run as one
``torch._grouped_mm`` call where PyTorch has a kernel for it (CUDA from compute capability 8.0,
and CPU from torch 2.9), else as one matmul per expert; the results are weighted and summed
back per token in a fixed order (deterministic). No token is dropped: there is no capacity
limit.
"""

import logging

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)


class TopKRouter(nn.Module):
    """Choose ``top_k`` experts per token and their weights.

    Args:
        dim (int): model dim d.
        num_experts (int): number of experts E.
        top_k (int): experts per token k (``1 <= k <= E``).
        norm_topk_prob (bool): renormalise the k chosen probabilities to sum to 1. Default: True.
        softmax_before_topk (bool): softmax over all E logits, then take the top k (Qwen-MoE,
            Mixtral); False takes the top k logits and softmaxes over them (gpt-oss), which
            ignores ``norm_topk_prob`` (the weights already sum to 1). Default: True.
        bias (bool): a bias on the router projection. Default: False.

    Raises:
        ValueError: when ``top_k`` is not in ``[1, num_experts]``.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_experts: int,
        top_k: int,
        norm_topk_prob: bool = True,
        softmax_before_topk: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k={top_k} must be between 1 and num_experts={num_experts}")
        self.num_experts = num_experts
        self.top_k = top_k
        self.norm_topk_prob = norm_topk_prob
        self.softmax_before_topk = softmax_before_topk
        self.gate = nn.Linear(dim, num_experts, bias=bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Route tokens.

        Args:
            x (torch.Tensor): tokens ``[n, d]``.

        Returns:
            tuple[torch.Tensor, torch.Tensor, torch.Tensor]: router logits ``[n, E]``, expert
            weights ``[n, k]`` (in ``x``'s dtype) and expert indices ``[n, k]`` (long).
        """
        logits = self.gate(x)  # [n, E]
        if self.softmax_before_topk:
            probs = F.softmax(logits, dim=-1, dtype=torch.float32)  # [n, E]
            weights, indices = torch.topk(probs, self.top_k, dim=-1)  # [n, k]
            if self.norm_topk_prob:
                weights = weights / weights.sum(dim=-1, keepdim=True)
        else:
            top, indices = torch.topk(logits, self.top_k, dim=-1)  # [n, k]
            weights = F.softmax(top, dim=-1, dtype=torch.float32)
        return logits, weights.to(x.dtype), indices


class ClampedSwiGLU(nn.Module):
    """gpt-oss's gated activation of the expert hidden state.

    ``(clamp(up, -limit, limit) + 1) * g * sigmoid(alpha * g)`` with ``g = clamp(gate, max=limit)``.

    Args:
        alpha (float): the sigmoid's gain. Default: 1.702.
        limit (float): the clamp. Default: 7.0.
    """

    def __init__(self, alpha: float = 1.702, limit: float = 7.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.limit = limit

    def forward(self, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """Apply the activation.

        Args:
            gate (torch.Tensor): the gate half ``[..., h]``.
            up (torch.Tensor): the up half ``[..., h]``.

        Returns:
            torch.Tensor: ``[..., h]``.
        """
        gate = gate.clamp(max=self.limit)
        up = up.clamp(min=-self.limit, max=self.limit)
        return (up + 1) * gate * torch.sigmoid(gate * self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, limit={self.limit}"


class GroupedExperts(nn.Module):
    """E gated experts ``down(act(gate(x)) * up(x))`` held as two stacked weight tensors.

    Args:
        dim (int): model dim d.
        hidden_dim (int): expert hidden dim h.
        num_experts (int): number of experts E.
        activation (nn.Module | None): gate activation; None means SiLU. Default: None.
        gated_activation (nn.Module | None): a module mapping ``(gate, up)`` to the hidden state
            (e.g. :class:`ClampedSwiGLU`), used instead of ``activation(gate) * up``. Default: None.
        bias (bool): per-expert biases ``gate_up_proj_bias [E, 2h]`` and ``down_proj_bias [E, d]``
            (gpt-oss). Default: False.
        gate_up_proj_lora (nn.Module | None): per-expert adapters of ``gate_up_proj``
            (:class:`~torchtune.modules.peft.ExpertLoRA` with ``in_dim=d, out_dim=2h``). Default: None.
        down_proj_lora (nn.Module | None): per-expert adapters of ``down_proj`` (``in_dim=h,
            out_dim=d``). Default: None.

    Attributes:
        gate_up_proj (nn.Parameter): ``[E, 2h, d]``, the gate rows then the up rows.
        down_proj (nn.Parameter): ``[E, d, h]``.
    """

    def __init__(
        self,
        *,
        dim: int,
        hidden_dim: int,
        num_experts: int,
        activation: nn.Module | None = None,
        gated_activation: nn.Module | None = None,
        bias: bool = False,
        gate_up_proj_lora: nn.Module | None = None,
        down_proj_lora: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if activation is not None and gated_activation is not None:
            raise ValueError("pass activation or gated_activation, not both")
        self.num_experts = num_experts
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.gate_up_proj = nn.Parameter(torch.empty(num_experts, 2 * hidden_dim, dim))
        self.down_proj = nn.Parameter(torch.empty(num_experts, dim, hidden_dim))
        self.gate_up_proj_bias = nn.Parameter(torch.empty(num_experts, 2 * hidden_dim)) if bias else None
        self.down_proj_bias = nn.Parameter(torch.empty(num_experts, dim)) if bias else None
        self.gated_activation = gated_activation
        self.activation = activation if activation is not None or gated_activation is not None else nn.SiLU()
        self.use_grouped_mm: bool | None = None  # None: wherever torch has a grouped-GEMM kernel
        self.reset_parameters()
        for name, adapter, shape in (("gate_up_proj_lora", gate_up_proj_lora, (num_experts, dim, 2 * hidden_dim)),
                                     ("down_proj_lora", down_proj_lora, (num_experts, hidden_dim, dim))):
            got = None if adapter is None else (adapter.num_experts, adapter.in_dim, adapter.out_dim)
            if adapter is not None and got != shape:
                raise ValueError(f"{name} adapts (num_experts, in_dim, out_dim)={got} but the experts need {shape}")
        self.gate_up_proj_lora = gate_up_proj_lora
        self.down_proj_lora = down_proj_lora

    def reset_parameters(self) -> None:
        """Initialise each expert as ``nn.Linear`` would (uniform, bound ``1 / sqrt(fan_in)``)."""
        for weight, bias, fan_in in ((self.gate_up_proj, self.gate_up_proj_bias, self.dim),
                                     (self.down_proj, self.down_proj_bias, self.hidden_dim)):
            bound = fan_in**-0.5
            nn.init.uniform_(weight, -bound, bound)
            if bias is not None:
                nn.init.uniform_(bias, -bound, bound)

    def _grouped(self, x: torch.Tensor, weight: torch.Tensor) -> bool:
        if self.use_grouped_mm is not None:
            return self.use_grouped_mm
        if any(n * x.element_size() % 16 for n in (x.shape[-1], *weight.shape[-2:])):
            return False  # the kernels need 16-byte strides (e.g. a rank-2 fp32 adapter): a matmul per expert
        if not hasattr(torch, "_grouped_mm"):
            return False
        if x.is_cuda:
            return torch.cuda.get_device_capability(x.device) >= (8, 0)
        if x.device.type != "cpu":
            return False
        major, minor = (int(v) for v in torch.__version__.split(".")[:2])
        aligned = x.data_ptr() % 16 == 0 and weight.data_ptr() % 16 == 0  # torch <= 2.10's CPU kernel needs it
        return (major, minor) > (2, 10) or ((major, minor) >= (2, 9) and aligned)

    def _matmuls(self, x: torch.Tensor, weight: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """``x`` rows grouped by expert (``counts[e]`` rows for expert e) times ``weight[e].T``."""
        if self._grouped(x, weight):
            offsets = counts.cumsum(0).to(torch.int32)  # [E]
            try:
                return torch._grouped_mm(x, weight.transpose(-2, -1), offs=offsets)  # [n * k, out]
            except RuntimeError as e:  # e.g. a kernel's alignment or dtype limits
                if self.use_grouped_mm:  # asked for explicitly: do not hide it
                    raise
                logger.warning("torch._grouped_mm failed (%s); these experts use one matmul per expert from now on", e)
                self.use_grouped_mm = False
        # unbind once: its backward stacks the E gradients (indexing weight[e] per expert would
        # allocate a full [E, ...] gradient for each expert)
        weights = weight.unbind(0)
        parts = [chunk @ weights[e].T for e, chunk in enumerate(x.split(counts.tolist())) if chunk.shape[0]]
        return torch.cat(parts) if parts else x.new_zeros(0, weight.shape[1])

    def _adapted(self, x: torch.Tensor, weight: torch.Tensor, adapter: nn.Module | None,
                 counts: torch.Tensor) -> torch.Tensor:
        """``_matmuls`` plus each expert's low-rank update ``s * B_e (A_e x)``, when adapted."""
        out = self._matmuls(x, weight, counts)
        if adapter is None or adapter.disabled:
            return out
        # adapters may be fp32 master weights under a bf16 model: they compute in x's dtype
        low_rank = self._matmuls(x, adapter.lora_a.weight.to(x.dtype), counts)  # [rows, r]
        return out + adapter.scaling * self._matmuls(low_rank, adapter.lora_b.weight.to(x.dtype), counts)

    def forward(self, x: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Run each token through its k experts and sum the weighted outputs.

        Args:
            x (torch.Tensor): tokens ``[n, d]``.
            indices (torch.Tensor): chosen experts ``[n, k]`` (long, in ``[0, E)``).
            weights (torch.Tensor): their weights ``[n, k]``.

        Returns:
            torch.Tensor: ``[n, d]``.
        """
        n, k = indices.shape
        flat = indices.reshape(-1)  # [n * k]
        order = torch.argsort(flat, stable=True)  # assignments grouped by expert
        counts = torch.bincount(flat, minlength=self.num_experts)  # [E]
        tokens = order // k  # token of each grouped assignment
        grouped = x.index_select(0, tokens)  # [n * k, d]
        gate_up = self._adapted(grouped, self.gate_up_proj, self.gate_up_proj_lora, counts)  # [n * k, 2h]
        experts = flat.index_select(0, order) if self.gate_up_proj_bias is not None else None  # expert of each row
        if experts is not None:
            gate_up = gate_up + self.gate_up_proj_bias.index_select(0, experts)
        gate, up = gate_up.chunk(2, dim=-1)  # [n * k, h] each
        hidden = self.gated_activation(gate, up) if self.gated_activation is not None else self.activation(gate) * up
        out = self._adapted(hidden, self.down_proj, self.down_proj_lora, counts)  # [n * k, d]
        if experts is not None:
            out = out + self.down_proj_bias.index_select(0, experts)
        out = out * weights.reshape(-1).index_select(0, order)[:, None]
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        out = out.index_select(0, inverse).view(n, k, -1)  # [n, k, d], each token's k outputs
        return out.sum(dim=1).to(x.dtype)  # [n, d]


class MoE(nn.Module):
    """Sparse feed-forward layer: routed experts plus an optional shared expert.

    ``y = experts(x, top-k of router(x)) + g(x) * shared_expert(x)``, where ``g`` is
    ``sigmoid(shared_expert_gate(x))`` when a gate is given, else 1. The router's logits of the
    latest forward are kept in :attr:`router_logits` (and :attr:`expert_counts`, the tokens each
    expert received) for :func:`load_balancing_loss` and logging.

    Args:
        router (TopKRouter): the router.
        experts (GroupedExperts): the routed experts.
        shared_expert (nn.Module | None): a dense feed-forward every token also runs through
            (Qwen2-MoE). Default: None.
        shared_expert_gate (nn.Module | None): ``d -> 1`` projection whose sigmoid scales the
            shared expert's output. Default: None.

    Raises:
        ValueError: when the router and the experts disagree on the number of experts, or a
            shared-expert gate comes without a shared expert.
    """

    def __init__(
        self,
        *,
        router: TopKRouter,
        experts: GroupedExperts,
        shared_expert: nn.Module | None = None,
        shared_expert_gate: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if router.num_experts != experts.num_experts:
            raise ValueError(f"router has num_experts={router.num_experts} but experts has {experts.num_experts}")
        if shared_expert_gate is not None and shared_expert is None:
            raise ValueError("shared_expert_gate needs a shared_expert")
        self.router = router
        self.experts = experts
        self.shared_expert = shared_expert
        self.shared_expert_gate = shared_expert_gate
        self.router_logits: torch.Tensor | None = None
        self.expert_counts: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer.

        Args:
            x (torch.Tensor): ``[..., d]`` (e.g. ``[b, s, d]``).

        Returns:
            torch.Tensor: same shape as ``x``.
        """
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])  # [n, d]
        logits, weights, indices = self.router(tokens)
        self.router_logits = logits
        self.expert_counts = torch.bincount(indices.reshape(-1), minlength=self.router.num_experts).detach()
        out = self.experts(tokens, indices, weights)  # [n, d]
        if self.shared_expert is not None:
            shared = self.shared_expert(tokens)  # [n, d]
            if self.shared_expert_gate is not None:
                shared = torch.sigmoid(self.shared_expert_gate(tokens)) * shared
            out = out + shared
        return out.reshape(shape)


def load_balancing_loss(model: nn.Module, mask: torch.Tensor | None = None) -> torch.Tensor | None:
    """The Switch-Transformer auxiliary loss over every :class:`MoE` layer's latest forward.

    With ``f_e`` the number of (token, choice) assignments that went to expert e per token and
    ``P_e`` the mean router probability of e, over the tokens of all layers together:
    ``E * sum_e f_e * P_e``. It is k when routing is balanced and grows as it collapses (at most
    ``E * k``); recipes add ``router_aux_loss_coef`` times it to the loss.

    Args:
        model (nn.Module): a model holding :class:`MoE` layers that ran a forward.
        mask (torch.Tensor | None): ``[b, s]``, 1/True for the tokens to count (e.g. not
            padding), matching the layers' last input. None counts every token. Default: None.

    Returns:
        torch.Tensor | None: a float32 scalar, differentiable through the router logits; None
        when the model has no MoE layer that ran.
    """
    layers = [m for m in model.modules() if isinstance(m, MoE) and m.router_logits is not None]
    if not layers:
        return None
    num_experts, top_k = layers[0].router.num_experts, layers[0].router.top_k
    keep = None if mask is None else mask.reshape(-1).float()  # [n]
    assigned = probs_sum = 0.0
    rows = 0.0
    for layer in layers:
        probs = F.softmax(layer.router_logits.float(), dim=-1)  # [n, E]
        chosen = torch.topk(probs, top_k, dim=-1).indices  # [n, k]
        one_hot = F.one_hot(chosen, num_experts).sum(dim=1).float()  # [n, E]
        if keep is not None:
            one_hot, probs = one_hot * keep[:, None], probs * keep[:, None]
        assigned = assigned + one_hot.sum(dim=0)  # [E]
        probs_sum = probs_sum + probs.sum(dim=0)  # [E]
        rows = rows + (keep.sum() if keep is not None else probs.shape[0])
    return num_experts * ((assigned / rows) * (probs_sum / rows)).sum()
