"""A model tokenizer for any model: ``tokenizer.json`` + the Jinja chat template of its config."""

import logging
import os
from datetime import datetime
from typing import Any, Sequence

from torchtune.data import Message, PromptTemplate
from torchtune.modules.tokenizers._hf_tokenizer import HuggingFaceBaseTokenizer, _token_content
from torchtune.modules.tokenizers._utils import ModelTokenizer

logger = logging.getLogger(__name__)


def _raise(message: str) -> None:
    raise ValueError(f"chat template error: {message}")


def _generation_tag_extension() -> Any:
    """A jinja2 extension for ``{% generation %}...{% endgeneration %}``, which templates such as
    SmolLM3's wrap around assistant turns (transformers uses it for its assistant-token mask). The
    body renders unchanged; our loss masks come from the message spans instead."""
    from jinja2 import nodes
    from jinja2.ext import Extension

    class GenerationTag(Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    return GenerationTag


def compile_chat_template(source: str) -> Any:
    """Compile a chat template in jinja2's immutable sandbox, as transformers does.

    Args:
        source (str): the Jinja template text.

    Returns:
        jinja2.Template: the compiled template (``raise_exception`` and ``strftime_now``
        globals, ``tojson`` filter keeping non-ASCII, ``{% generation %}`` blocks rendered as
        their body).
    """
    import json

    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols", _generation_tag_extension()]
    )

    def tojson(value: Any, indent: int | None = None, **kwargs: Any) -> str:
        return json.dumps(value, ensure_ascii=False, indent=indent, **kwargs)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


class HFModelTokenizer(ModelTokenizer):
    """Tokenize conversations with a model's own chat template.

    The whole conversation is rendered once by the template and tokenized in one pass (so the
    tokens equal ``apply_chat_template(..., tokenize=True)``); each token takes the mask of the
    message whose rendered text contains the token's first character. Message spans are found
    by rendering growing prefixes of the conversation, so the template must render a prefix of
    a conversation as a prefix of its full text. Truncation keeps the first ``max_seq_len``
    tokens as they are (the template, not this class, decides the end tokens).

    Args:
        tokenizer_json_path (str): ``tokenizer.json``.
        tokenizer_config_json_path (str): ``tokenizer_config.json`` with ``chat_template``
            (or a ``chat_template.jinja`` file next to it).
        generation_config_path (str | None): ``generation_config.json`` for BOS/EOS ids.
        max_seq_len (int | None): truncate to this many tokens. Default None.
        prompt_template (PromptTemplate | None): applied to the messages first. Default None.
        template_kwargs (dict | None): extra variables for the template. Default None.

    Raises:
        ValueError: if no chat template is found.
    """

    def __init__(
        self,
        tokenizer_json_path: str,
        tokenizer_config_json_path: str,
        *,
        generation_config_path: str | None = None,
        max_seq_len: int | None = None,
        prompt_template: PromptTemplate | None = None,
        template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(max_seq_len=max_seq_len, prompt_template=prompt_template)
        self.base = HuggingFaceBaseTokenizer(
            tokenizer_json_path,
            tokenizer_config_json_path=tokenizer_config_json_path,
            generation_config_path=generation_config_path,
        )
        config = self.base.config
        source = config.get("chat_template")
        jinja_file = os.path.join(os.path.dirname(str(tokenizer_config_json_path)), "chat_template.jinja")
        if source is None and os.path.exists(jinja_file):
            with open(jinja_file, encoding="utf-8") as f:
                source = f.read()
        if isinstance(source, list):  # [{"name": "default", "template": ...}, ...]
            source = next((t["template"] for t in source if t.get("name") == "default"), None)
        if not isinstance(source, str):
            raise ValueError(f"{tokenizer_config_json_path}: no 'chat_template' (and no chat_template.jinja beside it)")
        self._template = compile_chat_template(source)
        self._variables = {
            "bos_token": _token_content(config.get("bos_token")) or "",
            "eos_token": _token_content(config.get("eos_token")) or "",
            "pad_token": _token_content(config.get("pad_token")) or "",
            **(template_kwargs or {}),
        }
        self.bos_id, self.eos_id, self.pad_id = self.base.bos_id, self.base.eos_id, self.base.pad_id
        self.stop_tokens, self.vocab_size = self.base.stop_tokens, self.base.vocab_size
        self.truncate_with_eos = False

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        """Encode plain text (see ``HuggingFaceBaseTokenizer.encode``)."""
        return self.base.encode(text, add_bos=add_bos, add_eos=add_eos)

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Decode ids to text."""
        return self.base.decode(ids, skip_special_tokens=skip_special_tokens)

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
        """Render messages to text with the chat template."""
        dicts = [{"role": m.role, "content": m.content} for m in messages]
        return self._template.render(messages=dicts, add_generation_prompt=add_generation_prompt, **self._variables)

    def _encode_messages(self, messages: Sequence[Message], add_end_tokens: bool) -> tuple[list[int], list[bool]]:
        generation = not add_end_tokens and messages[-1].role != "assistant"
        text = self.render(messages, add_generation_prompt=generation)
        bounds = []  # end offset of each message's rendered text
        previous = ""
        for i in range(1, len(messages) + 1):
            prefix = text if i == len(messages) else self.render(messages[:i])
            if not text.startswith(prefix) or len(prefix) < len(previous):
                raise ValueError(
                    "the chat template does not render a conversation prefix as a prefix of the full text "
                    f"(at message {i - 1}); per-message loss masks cannot be derived from it"
                )
            bounds.append(len(prefix))
            previous = prefix
        ids, offsets = self.base.encode_with_offsets(text)
        mask, j = [], 0
        for start, _ in offsets:
            while j < len(bounds) - 1 and start >= bounds[j]:
                j += 1
            mask.append(messages[j].masked)
        return ids, mask
