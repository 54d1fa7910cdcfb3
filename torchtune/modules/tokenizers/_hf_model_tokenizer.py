"""A model tokenizer for any model: ``tokenizer.json`` + the Jinja chat template of its config."""

import logging
import os
from typing import Any, Sequence

from torchtune.data import Message, PromptTemplate
from torchtune.modules.tokenizers._chat_template import ChatTemplate
from torchtune.modules.tokenizers._hf_tokenizer import HuggingFaceBaseTokenizer, _token_content
from torchtune.modules.tokenizers._utils import ModelTokenizer

logger = logging.getLogger(__name__)


class HFModelTokenizer(ModelTokenizer):
    """Tokenize conversations with a model's own chat template.

    The whole conversation is rendered once by the template and tokenized in one pass (so the
    tokens equal ``apply_chat_template(..., tokenize=True)``). A token is trained on when it
    holds text of a message that is not ``masked``: for templates with ``{% generation %}``
    blocks, an assistant message trains on its blocks (as transformers'
    ``return_assistant_tokens_mask``); otherwise on its content, what the template writes
    between the generation prompt and the content, and its closing (end-of-turn and final EOS
    tokens), never on its header. Other unmasked messages train on their whole text. See
    ``torchtune.modules.tokenizers._chat_template`` for how messages are located.
    Truncation keeps the first ``max_seq_len`` tokens as they are (the template, not this
    class, decides the end tokens). ``template`` is the :class:`ChatTemplate` in use.

    Args:
        tokenizer_json_path (str): ``tokenizer.json``.
        tokenizer_config_json_path (str): ``tokenizer_config.json`` with ``chat_template``
            (or a ``chat_template.jinja`` file next to it).
        generation_config_path (str | None): ``generation_config.json`` for BOS/EOS ids.
        max_seq_len (int | None): truncate to this many tokens. Default None.
        prompt_template (PromptTemplate | None): applied to the messages first. Default None.
        template_kwargs (dict | None): extra variables for the template. Default None.

    Raises:
        ValueError: if no chat template is found or it is not valid Jinja.
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
        variables = {
            key: _token_content(config.get(key)) or ""
            for key in ("bos_token", "eos_token", "pad_token", "unk_token")
        }
        # transformers renders with tools=None and documents=None unless they are given
        variables.update(tools=None, documents=None, **(template_kwargs or {}))
        self.template = ChatTemplate(source, variables)
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
        return self.template.render(dicts, add_generation_prompt)

    def _encode_messages(self, messages: Sequence[Message], add_end_tokens: bool) -> tuple[list[int], list[bool]]:
        if not messages:
            raise ValueError("messages is empty; a conversation needs at least one message")
        generation = not add_end_tokens and messages[-1].role != "assistant"
        return self.template.render_with_mask(messages, generation, self.base.encode_with_offsets)
