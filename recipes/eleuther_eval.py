"""Evaluate a Hugging Face format model directory with EleutherAI's lm-evaluation-harness.

Needs the 'eval' extra (``pip install 'torchtune[eval]'``). Run it through the ``tune``
command or directly::

    tune run eleuther_eval --config tiny/eval
    tune run eleuther_eval --config tiny/eval checkpoint_dir=<output_dir>/step_<N> tasks=[hellaswag] limit=100

``tasks`` lists harness task names (``hellaswag``, ``arc_easy``, ...) and/or whole task configs
written inline as mappings (the tiny config evaluates the shipped instruction data that way).
:class:`TorchtuneLM` answers the harness's three request types with our model and tokenizer:
``loglikelihood`` (log-probability of a continuation, and whether greedy decoding would produce
it), ``loglikelihood_rolling`` (log-probability of a whole text, in windows of ``max_seq_len``)
and ``generate_until`` (greedy or sampled generation, cut at the task's stop strings).
"""

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import torchtune
from torchtune import config, training
from torchtune.generation import generate
from torchtune.models import model_from_hf_config
from torchtune.training.checkpointing import HuggingFaceCheckpointer
from torchtune.utils import require

KNOWN_KEYS = (
    "checkpoint_dir", "data_dir", "prompt", "tokenizer", "tasks", "limit", "num_fewshot", "batch_size",
    "max_seq_len", "max_gen_toks", "device", "dtype", "seed", "num_threads", "output_dir", "log_samples",
)


class TorchtuneLM:
    """Score and generate text for the harness with a torchtune model and tokenizer.

    The harness's ``LM`` base class is mixed in at run time (see :func:`harness_model`), so this
    class can be read and tested without lm-evaluation-harness installed.

    Args:
        model (torch.nn.Module): a decoder following the model call contract.
        tokenizer (Any): a tokenizer following the tokenizer contract.
        max_seq_len (int): the longest token sequence fed to the model.
        batch_size (int): scoring requests per forward pass.
        max_gen_toks (int): default generation budget when a task sets none.
        device (torch.device): where the model lives.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, max_seq_len: int, batch_size: int,
                 max_gen_toks: int, device: torch.device) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_seq_len, self._batch_size, self.max_gen_toks, self._device = max_seq_len, batch_size, max_gen_toks, device
        # an empty context is scored after this token (BOS when the tokenizer has one, else EOS)
        self.prefix_id = tokenizer.bos_id if tokenizer.bos_id is not None else tokenizer.eos_id

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_bos=False, add_eos=False)

    @torch.no_grad()
    def _score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """Log-probability of each target given its context, and whether it is the greedy choice."""
        out = []
        for start in range(0, len(pairs), self._batch_size):
            chunk = pairs[start : start + self._batch_size]
            rows = [(ctx + tgt)[-(self.max_seq_len + 1) :] for ctx, tgt in chunk]
            inputs = [r[:-1] for r in rows]
            longest = max(len(r) for r in inputs)
            tokens = torch.tensor([r + [self.tokenizer.pad_id or 0] * (longest - len(r)) for r in inputs], device=self._device)
            logits = self.model(tokens)  # [b, s, v]; right padding never affects earlier positions
            logits = torch.cat(logits, dim=1) if isinstance(logits, list) else logits
            logprobs = F.log_softmax(logits.float(), dim=-1)
            for row, (_, tgt), lp in zip(rows, chunk, logprobs):
                n, end = len(tgt), len(row) - 1
                target = torch.tensor(tgt, device=self._device)
                picked = lp[end - n : end]  # [n, v]: the positions that predict the targets
                score = picked.gather(-1, target[:, None]).sum().item()
                out.append((score, bool((picked.argmax(-1) == target).all())))
        return out

    def loglikelihood(self, requests: Sequence[Any]) -> list[tuple[float, bool]]:
        """``(log p(continuation | context), is_greedy)`` per request (``args = (context, continuation)``)."""
        pairs = []
        for req in requests:
            context, continuation = req.args
            spaces = len(context) - len(context.rstrip())  # "Answer: " + "x" is scored as "Answer:" + " x"
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            ctx = self._encode(context) if context else []
            pairs.append(([self.prefix_id, *ctx], self._encode(continuation)))
        return self._score(pairs)

    def loglikelihood_rolling(self, requests: Sequence[Any]) -> list[float]:
        """``log p(text)`` per request (``args = (text,)``), scored in disjoint windows."""
        out = []
        for req in requests:
            ids = self._encode(req.args[0])
            full = [self.prefix_id, *ids]
            windows = [(full[i : i + 1], ids[i : i + self.max_seq_len]) for i in range(0, len(ids), self.max_seq_len)]
            # each window is predicted from the token before it, then from its own prefix
            out.append(sum(score for score, _ in self._score(windows)))
        return out

    @torch.no_grad()
    def generate_until(self, requests: Sequence[Any]) -> list[str]:
        """Generated text per request (``args = (context, gen_kwargs)``), cut at ``until``."""
        out = []
        for req in requests:
            context, kwargs = req.args
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            budget = int(kwargs.get("max_gen_toks", self.max_gen_toks))
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample", False) else 0.0
            ids = [self.prefix_id, *self._encode(context)][-(self.max_seq_len - budget) :]
            tokens, _ = generate(self.model, [ids], budget, pad_id=self.tokenizer.pad_id or 0,
                                 temperature=temperature, stop_tokens=self.tokenizer.stop_tokens)
            self.model.delete_caches()  # scoring runs without caches (and with other batch sizes)
            new = [t for t in tokens[0, len(ids) :].tolist() if t not in self.tokenizer.stop_tokens]
            text = self.tokenizer.decode(new)
            for stop in until:
                text = text.split(stop)[0] if stop else text
            out.append(text)
        return out


def harness_model(*args: Any, **kwargs: Any) -> Any:
    """A :class:`TorchtuneLM` that is also an ``lm_eval.api.model.LM`` (imported here, lazily)."""
    require("lm_eval", extra="eval")
    from lm_eval.api.model import LM

    class HarnessLM(TorchtuneLM, LM):
        def __init__(self) -> None:
            LM.__init__(self)
            TorchtuneLM.__init__(self, *args, **kwargs)

    return HarnessLM()


def check_config(cfg: config.DictConfig) -> None:
    """Stop early on unknown keys, a directory without a model, or no tasks."""
    config.validate(cfg, known_keys=KNOWN_KEYS)
    if not (Path(cfg.checkpoint_dir) / "config.json").is_file():
        raise config.ConfigError(
            f"checkpoint_dir={cfg.checkpoint_dir!r} holds no Hugging Face model (no config.json); pass "
            "checkpoint_dir=<dir> (a fine-tuning output such as <output_dir>/step_<N>, or `tune download` output)"
        )
    if not cfg.get("tasks"):
        raise config.ConfigError("tasks is empty; pass e.g. tasks=[hellaswag]")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``--config PATH key=value ...``, evaluate, print and return the harness results."""
    cfg = config.parse_args(argv, variables={"recipes_root": str(torchtune.recipes_root())})
    check_config(cfg)
    lm_eval = require("lm_eval", extra="eval")  # fail before loading the model
    training.set_seed(cfg.seed)
    if cfg.get("num_threads"):
        torch.set_num_threads(cfg.num_threads)
    device = training.get_device(cfg.device)
    dtype, _ = training.get_dtype(cfg.dtype, device)

    checkpointer = HuggingFaceCheckpointer(cfg.checkpoint_dir, cfg.checkpoint_dir)
    model = model_from_hf_config(checkpointer.config)
    model.load_state_dict(checkpointer.load_checkpoint())
    model.to(device=device, dtype=dtype).eval()
    tokenizer = config.instantiate(cfg.tokenizer)
    lm = harness_model(model, tokenizer, max_seq_len=min(cfg.max_seq_len, model.max_seq_len),
                       batch_size=cfg.batch_size, max_gen_toks=cfg.max_gen_toks, device=device)

    tasks = [t.to_dict() if isinstance(t, config.DictConfig) else t for t in cfg.tasks]
    log_samples = bool(cfg.get("log_samples", False))
    results = lm_eval.simple_evaluate(model=lm, tasks=tasks, num_fewshot=cfg.num_fewshot, limit=cfg.limit,
                                      random_seed=cfg.seed, numpy_random_seed=cfg.seed, torch_random_seed=cfg.seed,
                                      log_samples=log_samples)
    from lm_eval.utils import make_table

    print(make_table(results))
    if cfg.get("output_dir"):
        path = Path(cfg.output_dir) / "eval_results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results["results"], indent=2, default=str), encoding="utf-8")
        print(f"Results written to {path}")
        if log_samples:  # every request the harness made and our model's answer, per task
            samples = {task: [{key: sample.get(key) for key in ("doc_id", "doc", "arguments", "resps", "filtered_resps")}
                              for sample in task_samples]
                       for task, task_samples in results.get("samples", {}).items()}
            samples_path = path.with_name("eval_samples.json")
            samples_path.write_text(json.dumps(samples, indent=1, default=str), encoding="utf-8")
            print(f"Per-request samples written to {samples_path}")
    return results


if __name__ == "__main__":
    try:
        main()
    except (config.ConfigError, ModuleNotFoundError) as e:
        sys.exit(f"error: {e}")
