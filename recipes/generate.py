"""Generate text from a Hugging Face format model directory (a download or a fine-tuning output).

Run it through the ``tune`` command or directly::

    tune run generate --config tiny/generate checkpoint_dir=<model dir> prompt="Tell me a joke."
    tune run generate --config tiny/generate instruction="Add the two numbers." input="3 + 4"

What is generated from, first match wins: ``messages`` (a list of ``{role, content}``),
``instruction`` (+ ``input``, rendered with the Alpaca prompt that ``alpaca_dataset`` trains
on), else ``prompt``. With ``chat: true`` the text goes through the tokenizer's chat format
as a user message (after an optional ``system`` message); with ``chat: false`` it is
continued as plain text. Sampling: ``temperature`` (0 = greedy), ``top_k``, ``top_p``,
``max_new_tokens``. Prints the answer and the decoding speed.
"""

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

import torchtune
from torchtune import config, training
from torchtune.data import AlpacaInstructTemplate, Message
from torchtune.generation import generate
from torchtune.models import model_from_hf_config
from torchtune.modules.tokenizers import HFModelTokenizer
from torchtune.training.checkpointing import HuggingFaceCheckpointer

KNOWN_KEYS = (
    "checkpoint_dir", "tokenizer", "prompt", "instruction", "input", "messages", "system", "chat",
    "max_new_tokens", "temperature", "top_k", "top_p", "seed", "device", "dtype", "num_threads",
)


def check_config(cfg: config.DictConfig) -> None:
    """Stop early on unknown keys, a directory without a model, or nothing to generate from."""
    config.validate(cfg, known_keys=KNOWN_KEYS)
    if not (Path(cfg.checkpoint_dir) / "config.json").is_file():
        raise config.ConfigError(
            f"checkpoint_dir={cfg.checkpoint_dir!r} holds no Hugging Face model (no config.json); pass "
            "checkpoint_dir=<dir> (a fine-tuning output such as <output_dir>/step_<N>, or `tune download` output)"
        )
    if not (cfg.get("messages") or cfg.get("instruction") or cfg.get("prompt")):
        raise config.ConfigError("nothing to generate from: set prompt=<text>, instruction=<text> or messages")


PROMPT_SOURCES = ("messages", "instruction", "prompt")  # the first one set is used


def prefer_command_line_prompt(cfg: config.DictConfig, argv: Sequence[str]) -> None:
    """A prompt source set on the command line replaces the config's: ``prompt="..."`` then
    answers that prompt even though the config presets an ``instruction``."""
    given = [arg.split("=", 1)[0] for arg in argv if "=" in arg and arg.split("=", 1)[0] in PROMPT_SOURCES]
    if given:
        for key in PROMPT_SOURCES:
            if key not in given:
                cfg[key] = None
        if "instruction" not in given and not any(arg.startswith("input=") for arg in argv):
            cfg["input"] = None


def prompt_messages(cfg: config.DictConfig) -> list[Message]:
    """The conversation to continue, from ``messages``, ``instruction``/``input`` or ``prompt``."""
    if cfg.get("messages"):
        return [Message(role=m["role"], content=m["content"]) for m in cfg.messages]
    text = AlpacaInstructTemplate.format(cfg.instruction, cfg.get("input") or "") if cfg.get("instruction") else cfg.prompt
    system = [Message(role="system", content=cfg.system)] if cfg.get("system") else []
    return [*system, Message(role="user", content=str(text))]


def prompt_tokens(tokenizer: object, messages: list[Message], chat: bool) -> list[int]:
    """Token ids of the prompt, ending where the model's answer begins."""
    if not chat:
        return tokenizer.encode("\n\n".join(m.content for m in messages), add_bos=True, add_eos=False)
    if not isinstance(tokenizer, HFModelTokenizer):  # family tokenizers open the answer with an empty turn
        messages = [*messages, Message(role="assistant", content="", eot=False)]
    tokens, _ = tokenizer.tokenize_messages(messages, add_end_tokens=False)
    return tokens


def main(argv: Sequence[str] | None = None) -> str:
    """Parse ``--config PATH key=value ...``, generate, print and return the answer."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = config.parse_args(argv, variables={"recipes_root": str(torchtune.recipes_root())})
    prefer_command_line_prompt(cfg, argv)
    check_config(cfg)
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

    messages = prompt_messages(cfg)
    ids = prompt_tokens(tokenizer, messages, bool(cfg.chat))
    rng = torch.Generator(device=device).manual_seed(cfg.seed)
    start = time.perf_counter()
    with torch.no_grad():
        out, _ = generate(
            model, [ids], cfg.max_new_tokens, pad_id=tokenizer.pad_id or 0, temperature=cfg.temperature,
            top_k=cfg.top_k, top_p=cfg.top_p, stop_tokens=tokenizer.stop_tokens, rng=rng,
        )
    seconds = time.perf_counter() - start
    new = out[0, len(ids):].tolist()
    answer_ids = [t for t in new if t not in tokenizer.stop_tokens and t != tokenizer.pad_id]
    answer = tokenizer.decode(answer_ids)
    print(f"Prompt: {messages[-1].content}")
    print(f"Answer: {answer}")
    print(f"{len(new)} tokens in {seconds:.2f}s ({len(new) / max(seconds, 1e-9):.1f} tokens/s)")
    return answer


if __name__ == "__main__":
    try:
        main()
    except config.ConfigError as e:
        sys.exit(f"error: {e}")
