"""Decoder-only transformer.

Notation: b batch, s sequence, s_kv key/value length, d embed dim, v vocab.
"""

import torch
from torch import nn

from torchtune.modules._block_causal_mask import BlockCausalMask
from torchtune.modules._document_attention import VarlenDocuments, document_block_mask, resolve_document_attention
from torchtune.modules._transformer import TiedLinear, TransformerSelfAttentionLayer


class TransformerDecoder(nn.Module):
    """Embeddings, a stack of layers, a final norm and an output projection.

    Args:
        tok_embeddings (nn.Embedding): ``v -> d``.
        layers (nn.ModuleList | list[nn.Module]): the decoder layers.
        max_seq_len (int): longest sequence the model supports.
        num_heads (int): query heads (for reference by callers).
        head_dim (int): per-head dimension (for reference by callers).
        norm (nn.Module): final norm.
        output (nn.Linear | TiedLinear): ``d -> v``.
        embed_scale (float | None): multiply embeddings by this (Gemma's ``sqrt(d)``).
            Default: None.
        final_logit_softcapping (float | None): logits become ``c * tanh(logits / c)``.
            Default: None.
        output_hidden_states (list[int] | None): indices of layers whose *input* hidden state
            ``[b, s, d]`` is returned before the logits (index ``num_layers`` is the final
            layer's output, before the norm). Default: None.

    Rows of documents (a :class:`BlockCausalMask`) are attended as :meth:`set_document_attention`
    says (``"auto"`` at first: flex attention on CUDA, per-document SDPA elsewhere).
    """

    def __init__(
        self,
        *,
        tok_embeddings: nn.Embedding,
        layers: nn.ModuleList | list[nn.Module],
        max_seq_len: int,
        num_heads: int,
        head_dim: int,
        norm: nn.Module,
        output: nn.Linear | TiedLinear,
        embed_scale: float | None = None,
        final_logit_softcapping: float | None = None,
        output_hidden_states: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.tok_embeddings = tok_embeddings
        self.layers = layers if isinstance(layers, nn.ModuleList) else nn.ModuleList(layers)
        self.max_seq_len = max_seq_len
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.norm = norm
        self.output = output
        self.embed_scale = embed_scale
        self.final_logit_softcapping = final_logit_softcapping
        self.output_hidden_states = list(output_hidden_states or [])
        self.num_output_chunks = 0
        self.skip_output_projection = False
        self.decoder_max_cache_seq_len: int | None = None
        self.document_attention = "auto"

    def set_document_attention(self, name: str) -> None:
        """Choose how rows of documents (a :class:`BlockCausalMask`) are attended.

        Args:
            name (str): ``"auto"`` (flex on CUDA, else per-document SDPA), ``"sdpa"`` (one SDPA
                call per document), ``"flex"`` (the whole row in one flex-attention kernel with a
                block mask built once per batch; CUDA only for training), ``"varlen"`` (flash
                attention over cumulative document lengths: CUDA, bf16/fp16) or
                ``"dense"`` (one SDPA call with the ``[b, s, s]`` bool mask: fixed shapes, for
                compiled layers off CUDA). Layers with attention sinks (and, for varlen, with
                softcapping) attend per document whatever the choice.

        Raises:
            ValueError: on an unknown name.
        """
        resolve_document_attention(name, torch.device("cpu"))  # checks the name
        self.document_attention = name

    def _layer_masks(self, mask: BlockCausalMask, device: torch.device) -> list[object]:
        """What each layer gets for a :class:`BlockCausalMask`, built once per batch (and per
        sliding window), outside the layers, so compiled layers see tensors only. A layer the
        chosen kernel cannot compute (attention sinks; softcapping for varlen) keeps the
        :class:`BlockCausalMask` and attends per document."""
        how = resolve_document_attention(self.document_attention, device)
        if how == "sdpa":
            return [mask] * len(self.layers)
        if how == "dense":
            return [mask.dense(device)] * len(self.layers)
        built: dict[int | None, object] = {}
        out: list[object] = []
        for layer in self.layers:
            attn = getattr(layer, "attn", None)
            if getattr(attn, "sinks", None) is not None or (how == "varlen" and getattr(attn, "softcapping", None)):
                out.append(mask)
                continue
            window = getattr(attn, "sliding_window", None)
            if window not in built:
                built[window] = (VarlenDocuments.of(mask, device) if how == "varlen"
                                 else document_block_mask(mask, device, window))
            out.append(built[window])
        return out

    def set_num_output_chunks(self, num_output_chunks: int) -> None:
        """Return logits as a list of this many chunks along s (0 = one tensor).

        Args:
            num_output_chunks (int): number of chunks, >= 0.

        Raises:
            ValueError: when negative.
        """
        if num_output_chunks < 0:
            raise ValueError(f"num_output_chunks={num_output_chunks} must be >= 0")
        self.num_output_chunks = num_output_chunks

    def set_skip_output_projection(self, skip: bool) -> None:
        """Deprecated: pass ``output="hidden"`` to ``forward`` instead. Return the final normed
        hidden states ``[b, s, d]`` instead of logits when ``forward`` gets no ``output``.

        Args:
            skip (bool): True to skip the output projection in ``forward``.
        """
        self.skip_output_projection = bool(skip)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """Logits of final normed hidden states (output projection and softcapping).

        Args:
            h (torch.Tensor): ``[..., d]``.

        Returns:
            torch.Tensor: ``[..., v]``.
        """
        return self._project(h)

    def setup_caches(
        self, batch_size: int, dtype: torch.dtype, *, decoder_max_seq_len: int | None = None
    ) -> None:
        """Allocate a KV cache in every layer.

        Args:
            batch_size (int): decoding batch size.
            dtype (torch.dtype): cache dtype.
            decoder_max_seq_len (int | None): number of cache slots; None = ``max_seq_len``.
        """
        self.decoder_max_cache_seq_len = decoder_max_seq_len or self.max_seq_len
        for layer in self.layers:
            layer.setup_caches(batch_size, dtype, self.decoder_max_cache_seq_len)

    def caches_are_enabled(self) -> bool:
        """bool: whether the layers hold KV caches."""
        return len(self.layers) > 0 and self.layers[0].caches_are_enabled()

    def delete_caches(self) -> None:
        """Remove every KV cache (frees it); the model then runs as before ``setup_caches``."""
        for module in self.modules():
            if getattr(module, "kv_cache", None) is not None:
                module.kv_cache = None

    def reset_caches(self) -> None:
        """Empty every KV cache (keeps the allocation).

        Raises:
            RuntimeError: when no caches are set up.
        """
        if not self.caches_are_enabled():
            raise RuntimeError("reset_caches() called before setup_caches()")
        for layer in self.layers:
            layer.reset_cache()

    def _check_inputs(
        self, tokens: torch.Tensor, mask: torch.Tensor | BlockCausalMask | None, output_index: torch.Tensor | None
    ) -> None:
        b, s = tokens.shape
        if isinstance(mask, BlockCausalMask):
            if (mask.batch_size, mask.seq_len) != (b, s):
                raise ValueError(f"BlockCausalMask covers [{mask.batch_size}, {mask.seq_len}] but tokens are [{b}, {s}]")
            if mask.max_document_len > self.max_seq_len:
                raise ValueError(
                    f"a document of {mask.max_document_len} tokens exceeds max_seq_len={self.max_seq_len}"
                )
        elif s > self.max_seq_len:
            raise ValueError(f"sequence length {s} exceeds max_seq_len={self.max_seq_len}")
        if mask is not None and not isinstance(mask, BlockCausalMask) and self.caches_are_enabled():
            s_kv = self.decoder_max_cache_seq_len
            if mask.shape[-1] != s_kv:
                raise ValueError(
                    f"with KV caches the mask must be [b, s, {s_kv}], got {list(mask.shape)}"
                )
        if output_index is not None:
            if output_index.dim() != 1 or output_index.dtype != torch.long:
                raise ValueError(f"output_index must be a 1-D long tensor, got {output_index.dtype} {list(output_index.shape)}")
            if output_index.numel() and (
                int(output_index[0]) < 0
                or int(output_index[-1]) >= b * s
                or bool((output_index[1:] <= output_index[:-1]).any())
            ):
                raise ValueError(
                    f"output_index must be strictly ascending flat positions in [0, {b * s}) (b * s for tokens "
                    f"[{b}, {s}]), e.g. torch.nonzero(labels.reshape(-1) != -100).squeeze(1)"
                )

    def _project(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.output(h)  # [b, s, v]
        if self.final_logit_softcapping is not None:
            cap = self.final_logit_softcapping
            logits = cap * torch.tanh(logits / cap)
        return logits

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        mask: torch.Tensor | BlockCausalMask | None = None,
        input_pos: torch.Tensor | None = None,
        output_index: torch.Tensor | None = None,
        output: str | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Compute logits (or the final hidden states).

        Args:
            tokens (torch.Tensor): ``[b, s]`` long.
            mask (torch.Tensor | BlockCausalMask | None): bool ``[b, s, s_kv]``, True = may
                attend; None = causal. With KV caches, ``s_kv`` is the cache length and column j
                is cache slot j. Rows with no True entry (padding queries) are let attend
                everywhere so that they stay finite. A :class:`BlockCausalMask` (rows of
                documents laid end to end, no caches) attends within each document; each
                document, not the row, must fit ``max_seq_len``. Default: None.
            input_pos (torch.Tensor | None): positions ``[b, s]`` long. Default: None.
            output_index (torch.Tensor | None): long ``[n]``, strictly ascending flat indices
                into the ``b * s`` positions whose outputs are wanted (e.g. the positions that
                carry a label). The last layer then computes only these positions (its keys and
                values still cover all of them) and the outputs come as one row of n positions:
                ``[1, n, v]`` logits (or chunks, or hidden states, as set). Default: None.
            output (str | None): ``"logits"``, or ``"hidden"`` for the final normed hidden states
                ``[b, s, d]`` (a loss such as :class:`~torchtune.modules.LinearCrossEntropyLoss`
                then projects only what it needs, with :meth:`project`). None follows the
                deprecated :meth:`set_skip_output_projection`. Default: None.

        Returns:
            torch.Tensor | list[torch.Tensor]: logits ``[b, s, v]``, or a list of
            ``num_output_chunks`` chunks ``[b, s_i, v]``; preceded by the requested hidden
            states ``[b, s, d]`` (as a list) when ``output_hidden_states`` is set. With
            ``skip_output_projection`` the final normed hidden states ``[b, s, d]`` take the
            place of the logits. With ``output_index``, ``[1, n, ...]`` in place of ``[b, s, ...]``
            (also for a requested hidden state of index ``num_layers``).

        Raises:
            ValueError: on sequences (documents) longer than ``max_seq_len``, a mask of the wrong
                shape or an ``output_index`` that is not ascending flat positions.
        """
        self._check_inputs(tokens, mask, output_index)
        if output not in (None, "logits", "hidden"):
            raise ValueError(f"output={output!r} must be 'logits' or 'hidden'")
        hidden_out = self.skip_output_projection if output is None else output == "hidden"
        if mask is not None and not isinstance(mask, BlockCausalMask):
            mask = mask | ~mask.any(dim=-1, keepdim=True)  # keep fully masked rows finite
        h = self.tok_embeddings(tokens)  # [b, s, d]
        if self.embed_scale is not None:
            h = h * torch.tensor(self.embed_scale, dtype=h.dtype)
        hidden = []
        last = len(self.layers) - 1
        masks = self._layer_masks(mask, h.device) if isinstance(mask, BlockCausalMask) else [mask] * len(self.layers)
        for i, layer in enumerate(self.layers):
            if i in self.output_hidden_states:
                hidden.append(h)
            if i == last and output_index is not None:
                if isinstance(layer, TransformerSelfAttentionLayer):
                    h = layer(h, mask=masks[i], input_pos=input_pos, output_index=output_index)  # [1, n, d]
                else:
                    h = layer(h, mask=masks[i], input_pos=input_pos)
                    h = h.reshape(-1, h.shape[-1]).index_select(0, output_index)[None]  # [1, n, d]
            else:
                h = layer(h, mask=masks[i], input_pos=input_pos)
        if output_index is not None and not self.layers:
            h = h.reshape(-1, h.shape[-1]).index_select(0, output_index)[None]  # [1, n, d]
        if len(self.layers) in self.output_hidden_states:
            hidden.append(h)
        h = self.norm(h)
        if hidden_out:
            out = h
        elif self.num_output_chunks > 0:
            out = [self._project(c) for c in h.chunk(self.num_output_chunks, dim=1)]
        else:
            out = self._project(h)
        return [*hidden, out] if self.output_hidden_states else out
