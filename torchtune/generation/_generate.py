"""Batched autoregressive generation with a KV cache over left-padded prompts.

Notation: b batch, s prompt length (after padding), n new tokens, t = s + n, v vocab.
"""

from typing import Any, Sequence

import torch
from torch import nn

from torchtune.generation._sampling import _check_sampling_args, sample_next_token
from torchtune.modules.tokenizers import ModelTokenizer


def left_pad_prompts(
    prompt_tokens: Sequence[Sequence[int]] | torch.Tensor, pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad prompts into one batch and mark the real tokens.

    A tensor is taken as already left-padded: each row's padding is the run of ``pad_id`` at its
    start (a ``pad_id`` after the first real token counts as a real token).

    Args:
        prompt_tokens (Sequence[Sequence[int]] | torch.Tensor): token-id lists of any lengths, or
            a ``[b, s]`` long tensor.
        pad_id (int): padding id. Default: 0.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: tokens ``[b, s]`` long and ``is_real [b, s]`` bool.

    Raises:
        ValueError: when there are no prompts, the tensor is not 2-D, or a prompt is empty.
    """
    if isinstance(prompt_tokens, torch.Tensor):
        if prompt_tokens.dim() != 2:
            raise ValueError(f"prompt_tokens must be [b, s], got shape {list(prompt_tokens.shape)}")
        tokens = prompt_tokens.long()
        is_real = torch.cumsum(tokens != pad_id, dim=-1) > 0  # [b, s]
    else:
        if len(prompt_tokens) == 0:
            raise ValueError("prompt_tokens is empty; pass at least one prompt")
        s = max(len(p) for p in prompt_tokens)
        tokens = torch.full((len(prompt_tokens), s), pad_id, dtype=torch.long)
        is_real = torch.zeros((len(prompt_tokens), s), dtype=torch.bool)
        for row, prompt in enumerate(prompt_tokens):
            if len(prompt):
                tokens[row, s - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
                is_real[row, s - len(prompt) :] = True
    empty = (~is_real.any(dim=-1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"prompts {empty} are empty (all padding); every prompt needs a token")
    return tokens, is_real


def generation_masks(is_real: torch.Tensor, max_new_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention mask and positions for a left-padded prompt followed by new tokens.

    Args:
        is_real (torch.Tensor): ``[b, s]`` bool, False on padding.
        max_new_tokens (int): number of slots after the prompt.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ``mask [b, t, t]`` bool (True = may attend: causal and
        not padding) and ``input_pos [b, t]`` long (0 at each row's first real token; padding
        slots get 0).
    """
    b, s = is_real.shape
    t = s + max_new_tokens
    key_real = torch.ones((b, t), dtype=torch.bool, device=is_real.device)
    key_real[:, :s] = is_real
    causal = torch.tril(torch.ones((t, t), dtype=torch.bool, device=is_real.device))
    mask = causal[None] & key_real[:, None, :]  # [b, t, t]
    input_pos = (torch.cumsum(key_real.long(), dim=-1) - 1).clamp(min=0)  # [b, t]
    return mask, input_pos


def _last_logits(out: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    if isinstance(out, list):
        out = torch.cat(out, dim=1)  # chunked output: [b, s, v]
    return out[:, -1]  # [b, v]


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    param = next(p for p in model.parameters() if p.is_floating_point())
    return param.dtype, param.device


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt_tokens: Sequence[Sequence[int]] | torch.Tensor,
    max_new_tokens: int,
    *,
    pad_id: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop_tokens: Sequence[int] | None = None,
    rng: torch.Generator | Sequence[torch.Generator] | None = None,
    return_logits: bool = False,
    stop_early: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Continue a batch of prompts, one token at a time, using the model's KV cache.

    Prompts are left-padded; each row's positions start at 0 at its first real token and
    padding is never attended to. The prompt is run once (prefill), then one token per step.
    The model's caches are (re)allocated for this batch with ``s + max_new_tokens`` slots and
    stay enabled afterwards (``model.delete_caches()`` frees them). A row that produced a stop
    token gets ``pad_id`` after it; the loop ends when every row has stopped (unless
    ``stop_early`` is False) or ``max_new_tokens`` tokens were produced.

    Args:
        model (nn.Module): a decoder following the model call contract
            (``model(tokens, mask=, input_pos=)`` and ``setup_caches``).
        prompt_tokens (Sequence[Sequence[int]] | torch.Tensor): prompts as id lists, or a
            left-padded ``[b, s]`` tensor (see :func:`left_pad_prompts`).
        max_new_tokens (int): most tokens to add per row, >= 1.
        pad_id (int): id used for padding. Default: 0.
        temperature (float): sampling temperature; 0 is greedy. Default: 1.0.
        top_k (int | None): top-k filtering. Default: None.
        top_p (float | None): nucleus filtering. Default: None.
        stop_tokens (Sequence[int] | None): ids that end a row (kept in the output). Default: None.
        rng (torch.Generator | Sequence[torch.Generator] | None): random source for sampling,
            or one generator per row (see :func:`sample_next_token`). Default: None.
        return_logits (bool): also return the logits each new token was drawn from.
            Default: False.
        stop_early (bool): end the loop once every row has stopped. False always runs
            ``max_new_tokens`` steps, as processes that share sharded weights (FSDP) must: each
            forward call is a collective. Default: True.

    Returns:
        tuple[torch.Tensor, torch.Tensor | None]: tokens ``[b, s + n]`` (the padded prompts
        followed by the ``n <= max_new_tokens`` new tokens) and logits ``[b, n, v]`` (or None).

    Raises:
        ValueError: on an empty prompt, ``max_new_tokens < 1``, bad sampling arguments, or a
            total length beyond ``model.max_seq_len``.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
    _check_sampling_args(temperature, top_k, top_p)
    dtype, device = _model_dtype_device(model)
    tokens, is_real = left_pad_prompts(prompt_tokens, pad_id)
    tokens, is_real = tokens.to(device), is_real.to(device)
    b, s = tokens.shape
    total = s + max_new_tokens
    max_seq_len = getattr(model, "max_seq_len", None)
    if max_seq_len is not None and total > max_seq_len:
        raise ValueError(
            f"prompt length {s} + max_new_tokens={max_new_tokens} exceeds max_seq_len={max_seq_len}"
        )
    mask, input_pos = generation_masks(is_real, max_new_tokens)
    stop_ids = torch.as_tensor(list(stop_tokens or []), dtype=torch.long, device=device)
    model.setup_caches(b, dtype, decoder_max_seq_len=total)
    sample_kwargs: dict[str, Any] = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=rng)

    logits = _last_logits(model(tokens, mask=mask[:, :s], input_pos=input_pos[:, :s]))
    stopped = torch.zeros(b, dtype=torch.bool, device=device)
    new_tokens, all_logits = [], []
    for step in range(max_new_tokens):
        if return_logits:
            all_logits.append(logits)
        token = sample_next_token(logits, **sample_kwargs)  # [b]
        token = token.masked_fill(stopped, pad_id)
        new_tokens.append(token)
        stopped |= torch.isin(token, stop_ids)
        if (stop_early and bool(stopped.all())) or step == max_new_tokens - 1:
            break
        slot = s + step
        out = model(token[:, None], mask=mask[:, slot : slot + 1], input_pos=input_pos[:, slot : slot + 1])
        logits = _last_logits(out)
    generated = torch.stack(new_tokens, dim=1)  # [b, n]
    stacked = torch.stack(all_logits, dim=1) if return_logits else None  # [b, n, v]
    return torch.cat([tokens, generated], dim=1), stacked


def generate_text(
    model: nn.Module,
    tokenizer: ModelTokenizer,
    prompt: str | Sequence[Any],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: torch.Generator | None = None,
) -> str:
    """Generate a continuation of one text prompt or one conversation and decode it.

    A string is encoded with ``tokenizer.encode(prompt, add_bos=True, add_eos=False)``. A list
    of messages goes through ``tokenizer.tokenize_messages(messages, add_end_tokens=False)``;
    end it with an empty assistant message so that the prompt ends with the assistant header.
    Generation stops at ``tokenizer.stop_tokens``; the stop token is not part of the result.

    Args:
        model (nn.Module): a decoder following the model call contract.
        tokenizer (ModelTokenizer): the model's tokenizer.
        prompt (str | Sequence[Any]): text or a list of :class:`~torchtune.data.Message`.
        max_new_tokens (int): most tokens to generate.
        temperature (float): sampling temperature; 0 is greedy. Default: 1.0.
        top_k (int | None): top-k filtering. Default: None.
        top_p (float | None): nucleus filtering. Default: None.
        rng (torch.Generator | None): random source. Default: None.

    Returns:
        str: the decoded new text.
    """
    if isinstance(prompt, str):
        ids = tokenizer.encode(prompt, add_bos=True, add_eos=False)
    else:
        ids, _ = tokenizer.tokenize_messages(list(prompt), add_end_tokens=False)
    pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    stop_tokens = list(tokenizer.stop_tokens)
    tokens, _ = generate(
        model, [ids], max_new_tokens, pad_id=pad_id, temperature=temperature, top_k=top_k,
        top_p=top_p, stop_tokens=stop_tokens, rng=rng,
    )
    new = tokens[0, len(ids) :].tolist()
    for i, tok in enumerate(new):
        if tok in stop_tokens:
            new = new[:i]
            break
    return tokenizer.decode(new, skip_special_tokens=True)
