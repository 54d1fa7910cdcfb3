"""Jinja chat templates as models ship them, and the loss mask of a rendered conversation.

A conversation is rendered once and tokenized in one pass, so its tokens equal transformers'
``apply_chat_template(..., tokenize=True)``. The mask is then derived in characters and mapped
to tokens through the tokenizer's offsets:

- Templates with transformers' ``{% generation %} ... {% endgeneration %}`` blocks: the text
  inside a block is what its assistant message trains on (the semantics of transformers'
  ``return_assistant_tokens_mask``).
- Other templates: each message's rendered content is located in the full text. One render
  with every content replaced by its own marker gives the template's text around the contents,
  which must reappear in the full text in order; where it does not (a template whose output
  elsewhere depends on a content, e.g. Qwen3 with reasoning in the last turn), each message is
  rendered with only its content replaced by a sentinel and located by the common prefix and
  suffix of the two texts. Nothing assumes that a rendered prefix of the conversation is a
  prefix of the whole, so templates that render the last assistant turn differently from
  earlier ones (Qwen3) or that end with the EOS token unless a generation prompt is asked
  (Phi-3) split as well. Around the content, an assistant message trains on what the model
  would generate after the template's generation prompt (e.g. Qwen3's empty think block) and
  on its closing (end-of-turn tokens, and the template's final EOS after the last message);
  the header is never trained on.

A template whose turns cannot be told apart this way raises one ``ValueError`` naming the
message.
"""

import json
import logging
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.ext import Extension

from torchtune.data import Message

logger = logging.getLogger(__name__)

# Private-use code points: no real text or template literal contains them.
_SENTINEL = "\ue000\ue001torchtune\ue002\ue003"


def _raise(message: str) -> None:
    raise ValueError(f"chat template error: {message}")


@dataclass
class _Recorder:
    """Characters emitted so far by a streaming render, and the generation blocks seen."""

    emitted: int = 0
    blocks: list[tuple[int, int]] = field(default_factory=list)


class _GenerationBlocks(Extension):
    """The ``{% generation %}`` tag of transformers' chat templates.

    The block renders its body unchanged; while a :class:`_Recorder` is attached, it records
    the character span the body occupies in the output.
    """

    tags = {"generation"}

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.used = False
        self.recorder: _Recorder | None = None

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        self.used = True
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_block"), [], [], body).set_lineno(lineno)

    def _block(self, caller: Callable[[], str]) -> str:
        text = caller()
        if self.recorder is not None:
            start = self.recorder.emitted
            self.recorder.blocks.append((start, start + len(text)))
        return text


def compile_chat_template(source: str) -> Any:
    """Compile a chat template in jinja2's immutable sandbox, as transformers does.

    Args:
        source (str): the Jinja template text.

    Returns:
        jinja2.Template: the compiled template (``raise_exception`` and ``strftime_now``
        globals, ``tojson`` filter keeping non-ASCII, the ``{% generation %}`` tag).

    Raises:
        ValueError: if the template is not valid Jinja (the message names the line).
    """
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols", _GenerationBlocks]
    )

    def tojson(value: Any, indent: int | None = None, **kwargs: Any) -> str:
        return json.dumps(value, ensure_ascii=False, indent=indent, **kwargs)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except TemplateSyntaxError as e:
        raise ValueError(f"the chat template is not valid Jinja: {e.message} (template line {e.lineno})") from None


def _common_prefix(a: str, b: str, limit: int | None = None) -> int:
    n = min(len(a), len(b)) if limit is None else min(len(a), len(b), limit)
    lo, hi = 0, n  # binary search on equal prefixes: fast for long texts
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    return _common_prefix(a[::-1], b[::-1], limit)


@dataclass
class _Region:
    """Character offsets of one message in the full text: its header starts at ``start``,
    the text it would generate at ``body`` (assistant only), its content spans
    ``[content, content_end)`` and its closing ends at ``end``."""

    index: int
    start: int
    body: int
    content: int
    content_end: int
    end: int


class ChatTemplate:
    """A compiled chat template with the variables it is rendered with.

    Args:
        source (str): the Jinja template text.
        variables (Mapping[str, Any] | None): template variables (``bos_token``, ``eos_token``,
            extra keyword arguments such as ``enable_thinking``). Default None.

    Raises:
        ValueError: if the template is not valid Jinja.
    """

    def __init__(self, source: str, variables: Mapping[str, Any] | None = None) -> None:
        self.source = source
        self.template = compile_chat_template(source)
        self.variables = dict(variables or {})
        self._tracker: _GenerationBlocks = next(
            e for e in self.template.environment.extensions.values() if isinstance(e, _GenerationBlocks)
        )

    @property
    def has_generation_blocks(self) -> bool:
        """Whether the template marks assistant text with ``{% generation %}`` blocks."""
        return self._tracker.used

    def render(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = False) -> str:
        """Render message dicts (``{"role", "content"}``) to text."""
        return self.template.render(
            messages=list(messages), add_generation_prompt=add_generation_prompt, **self.variables
        )

    def render_with_blocks(
        self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = False
    ) -> tuple[str, list[tuple[int, int]]]:
        """Render and return the text with the ``(start, end)`` character spans of its
        ``{% generation %}`` blocks (empty for templates without them)."""
        recorder = _Recorder()
        self._tracker.recorder = recorder
        pieces = []
        try:
            for piece in self.template.generate(
                messages=list(messages), add_generation_prompt=add_generation_prompt, **self.variables
            ):
                pieces.append(piece)
                recorder.emitted += len(piece)
        finally:
            self._tracker.recorder = None
        return "".join(pieces), recorder.blocks

    def _try_render(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool) -> str | None:
        """Render, or None where the template refuses this (partial) conversation."""
        try:
            return self.render(messages, add_generation_prompt)
        except (TemplateError, ValueError, TypeError, KeyError, IndexError) as e:
            logger.debug("chat template cannot render a partial conversation: %s", e)
            return None

    def _content_span(self, dicts: list[dict[str, Any]], i: int, text: str, gen: bool) -> tuple[int, int] | None:
        """Where message ``i``'s content lies in ``text``; None when the template drops it."""
        replaced = [dict(d, content=_SENTINEL) if k == i else d for k, d in enumerate(dicts)]
        other = self._try_render(replaced, gen)
        if other is None:
            raise ValueError(f"rendering message {i} ({dicts[i]['role']}) with other content fails")
        if _SENTINEL not in other and other == text:
            return None
        start = _common_prefix(text, other)
        end = len(text) - _common_suffix(text, other, min(len(text), len(other)) - start)
        return start, end

    def _skeleton_spans(self, dicts: list[dict[str, Any]], text: str, gen: bool) -> list[tuple[int, int, int]] | None:
        """All contents located with one render: every content replaced by its own marker, the
        text between markers must reappear in ``text`` in order. None when it does not (a
        template whose output elsewhere depends on a content), so each message is located
        on its own."""
        marks = [f"\ue000{k}\ue001" for k in range(len(dicts))]
        skeleton = self._try_render([dict(d, content=m) for d, m in zip(dicts, marks)], gen)
        if skeleton is None or any(skeleton.count(m) > 1 for m in marks):
            return None
        found = sorted((skeleton.index(m), k) for k, m in enumerate(marks) if m in skeleton)
        spans: list[tuple[int, int, int]] = []
        pos = after = 0
        for n, (at, k) in enumerate(found):
            if not text.startswith(skeleton[after:at], pos):
                return None
            pos += at - after
            after = at + len(marks[k])
            last = n + 1 == len(found)
            following = skeleton[after:] if last else skeleton[after:found[n + 1][0]]
            content = dicts[k]["content"]
            if last:
                end = len(text) - len(following) if text.endswith(following) else -1
            elif text.startswith(content + following, pos):
                end = pos + len(content)
            else:  # the template changed the content (e.g. trimmed it)
                end = text.find(following, pos) if following else -1
            if end < pos:
                return None
            spans.append((pos, end, k))
            pos = end
        if not found and skeleton != text:
            return None
        return spans

    def _tail(self, dicts: list[dict[str, Any]], i: int) -> str:
        """What the template writes after message ``i``'s content when ``i`` is the last message."""
        prefix = self._try_render([*dicts[:i], dict(dicts[i], content=_SENTINEL)], False)
        if prefix is None or _SENTINEL not in prefix:
            return ""
        return prefix[prefix.rindex(_SENTINEL) + len(_SENTINEL):]

    def _prompt_end(self, dicts: list[dict[str, Any]], i: int, text: str, start: int, content: int) -> int:
        """Where the template's generation prompt for assistant message ``i`` ends in ``text``
        (``content`` when it has none or it does not match)."""
        prompt = self._try_render(dicts[:i], True) if i > 0 else None
        if prompt is None or prompt == self._try_render(dicts[:i], False):
            return content
        shared = _common_prefix(prompt, text, content)
        return shared if start <= shared <= content else content

    def _regions(
        self, dicts: list[dict[str, Any]], text: str, gen: bool, snap: Callable[[int], int]
    ) -> list[_Region]:
        """Each rendered message's region in ``text``, in text order.

        Closings are looked up once per role and the generation prompt once per conversation
        (each is then matched against ``text``), so a conversation costs a few renders.

        Raises:
            ValueError: when the messages' texts overlap or cannot be rendered separately.
        """
        spans = self._skeleton_spans(dicts, text, gen)
        if spans is None:
            spans = []
            for i in range(len(dicts)):
                span = self._content_span(dicts, i, text, gen)
                if span is not None:
                    spans.append((span[0], span[1], i))
            spans.sort()
        tails: dict[str, str] = {}
        prompt: str | None = None  # the assistant generation prompt as it appears in text
        regions: list[_Region] = []
        for k, (content, content_end, i) in enumerate(spans):
            next_content = spans[k + 1][0] if k + 1 < len(spans) else len(text)
            if content_end > next_content:
                j = spans[k + 1][2]
                raise ValueError(
                    f"the texts of message {i} ({dicts[i]['role']}) and message {j} ({dicts[j]['role']}) "
                    "overlap in the rendered conversation"
                )
            role = dicts[i]["role"]
            if role not in tails:
                tails[role] = self._tail(dicts, i)
            end = content_end + _common_prefix(tails[role], text[content_end:])
            end = max(content_end, min(snap(end), next_content))
            start = regions[-1].end if regions else 0
            body = content
            if role == "assistant":
                if prompt is not None and text.startswith(prompt, start) and start + len(prompt) <= content:
                    body = start + len(prompt)
                else:
                    body = snap(self._prompt_end(dicts, i, text, start, content))
                    body = body if start <= body <= content else content
                    prompt = text[start:body] if body > start else prompt
            regions.append(_Region(i, start, body, content, content_end, end))
        return regions

    def render_with_mask(
        self,
        messages: Sequence[Message],
        add_generation_prompt: bool,
        encode: Callable[[str], tuple[list[int], list[tuple[int, int]]]],
    ) -> tuple[list[int], list[bool]]:
        """Render, tokenize and mask a conversation.

        Args:
            messages (Sequence[Message]): the conversation; ``masked`` marks messages excluded
                from the loss.
            add_generation_prompt (bool): end with the template's generation prompt.
            encode (Callable): text -> (token ids, ``(start, end)`` character span of each).

        Returns:
            tuple[list[int], list[bool]]: token ids and mask (True = excluded from the loss).

        Raises:
            ValueError: when the template refuses the conversation (``raise_exception``, an
                undefined field) or its turns cannot be located in its text.
            jinja2.exceptions.SecurityError: when the template breaks out of the sandbox.
        """
        dicts = [{"role": m.role, "content": m.content} for m in messages]
        try:
            text, blocks = self.render_with_blocks(dicts, add_generation_prompt)
        except SecurityError:
            raise
        except (TemplateError, TypeError, KeyError, IndexError) as e:
            roles = ", ".join(d["role"] for d in dicts)
            raise ValueError(
                f"the chat template cannot render this conversation (roles: {roles}): {type(e).__name__}: {e}"
            ) from e
        ids, offsets = encode(text)
        starts = [s for s, _ in offsets]

        def snap(pos: int) -> int:  # move a position inside a token back to the token's start
            k = bisect_right(starts, pos) - 1
            return offsets[k][0] if k >= 0 and offsets[k][0] < pos < offsets[k][1] else pos

        trained = bytearray(len(text) + 1)
        regions: list[_Region] | None = None
        error: ValueError | None = None
        others_trained = any(not m.masked and m.role != "assistant" for m in messages)
        needs_regions = not self.has_generation_blocks or others_trained
        one_block_each = len(blocks) == sum(m.role == "assistant" for m in messages)
        if needs_regions or not one_block_each:
            try:
                regions = self._regions(dicts, text, add_generation_prompt, snap)
            except ValueError as e:
                error = e
        if regions is None and needs_regions:
            raise ValueError(
                f"{error}; per-message loss masks cannot be derived from this chat template. Mark the "
                "assistant text with {% generation %} ... {% endgeneration %} (transformers' convention) "
                "or use a template that renders each message's content as written"
            )
        if self.has_generation_blocks:
            for (s, e), owner in zip(blocks, self._block_owners(messages, blocks, regions, error)):
                if not messages[owner].masked:
                    trained[s:e] = b"\x01" * (e - s)
        for r in regions or []:
            m = messages[r.index]
            if m.masked or (self.has_generation_blocks and m.role == "assistant"):
                continue
            s = r.body if m.role == "assistant" else r.start
            trained[s:r.end] = b"\x01" * (r.end - s)
        return ids, _token_mask(trained, offsets)

    @staticmethod
    def _block_owners(
        messages: Sequence[Message], blocks: list[tuple[int, int]], regions: list[_Region] | None,
        error: ValueError | None,
    ) -> list[int]:
        """The message each ``{% generation %}`` block belongs to."""
        assistants = [i for i, m in enumerate(messages) if m.role == "assistant"]
        if len(blocks) == len(assistants):
            return assistants
        regions = [r for r in regions or [] if messages[r.index].role == "assistant"]
        if regions:  # the last assistant message that starts before the block ends
            starts = [r.start for r in regions]
            return [regions[max(bisect_right(starts, e - 1) - 1, 0)].index for _, e in blocks]
        if not assistants:
            return [0] * len(blocks)
        raise ValueError(
            f"the chat template writes {len(blocks)} {{% generation %}} blocks for {len(assistants)} assistant "
            f"messages and its messages cannot be located ({error}); loss masks cannot be derived"
        )


def _token_mask(trained: bytearray, offsets: Sequence[tuple[int, int]]) -> list[bool]:
    """A token is trained on when any of its characters is; the mask is True elsewhere."""
    total = [0]
    for flag in trained:
        total.append(total[-1] + flag)
    mask = []
    for s, e in offsets:
        e = max(e, s + 1)
        mask.append(total[min(e, len(trained))] - total[min(s, len(trained))] == 0)
    return mask
