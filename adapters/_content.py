"""What a lash `ToolResult` shows a model, whatever the provider: the parts to render, in order, and the
text notes that stand in for parts a provider cannot carry. Pure: no I/O, no SDK."""

from __future__ import annotations

import json
from urllib.parse import unquote, urlsplit

from lash_core import AudioPart, ContentPart, ImagePart, ResourceLinkPart, ResourcePart, TextPart, ToolResult

__all__ = [
    "PDF_MIME_TYPE",
    "data_url",
    "decoded_size",
    "file_name",
    "is_pdf",
    "model_parts",
    "omitted_note",
    "resource_link_text",
    "resource_text",
]

PDF_MIME_TYPE = "application/pdf"


def model_parts(result: ToolResult) -> tuple[ContentPart, ...]:
    """The parts a model reads, in order.

    Empty text parts are dropped (Anthropic rejects empty text blocks and they tell a model nothing). When no
    text part is left and the result has structured content, that content follows as one JSON text part, so a
    tool that answers with structured content alone is not read as empty. A failure with nothing to show gets
    its message.
    """
    parts = [part for part in result.content if not (isinstance(part, TextPart) and not part.text)]
    if result.structured is not None and not any(isinstance(part, TextPart) for part in parts):
        parts.append(TextPart(json.dumps(result.structured, ensure_ascii=False, default=str)))
    if not parts and result.failure is not None:
        parts.append(TextPart(result.failure.message))
    return tuple(parts)


def decoded_size(data: str) -> int:
    """Bytes that base64 `data` decodes to (computed from its length; invalid input counts as its length)."""
    stripped = data.strip()
    if len(stripped) % 4:
        return len(stripped)
    padding = len(stripped) - len(stripped.rstrip("="))
    return len(stripped) // 4 * 3 - min(padding, 2)


def omitted_note(part: ImagePart | AudioPart | ResourcePart, why: str) -> str:
    """`[image omitted (image/bmp, 1024 bytes): <why>]`: what a model reads in place of a part it cannot get."""
    if isinstance(part, ResourcePart):
        what, mime, data = f"resource {part.uri}", part.mime_type or "unknown type", part.blob or ""
    else:
        what, mime, data = part.type, part.mime_type, part.data
    return f"[{what} omitted ({mime}, {decoded_size(data)} bytes): {why}]"


def resource_text(part: ResourcePart) -> str:
    """An embedded text resource: a `[resource <uri>]` line, then its text."""
    return f"[resource {part.uri}]\n{part.text or ''}"


def resource_link_text(part: ResourceLinkPart) -> str:
    """`[resource link <name>: <uri> (<mime>) <description>]`, leaving out what the part does not carry."""
    text = f"[resource link {part.name}: {part.uri}"
    if part.mime_type:
        text += f" ({part.mime_type})"
    if part.description:
        text += f" - {part.description}"
    return text + "]"


def is_pdf(part: ResourcePart) -> bool:
    return part.blob is not None and (part.mime_type or "").lower() == PDF_MIME_TYPE


def data_url(mime_type: str, data: str) -> str:
    """A `data:` URL for base64 `data`, as OpenAI takes images and files."""
    return f"data:{mime_type};base64,{data}"


def file_name(uri: str, default: str) -> str:
    """The last path segment of `uri`, or `default` when it has none."""
    path = urlsplit(uri).path
    name = unquote(path.rsplit("/", 1)[-1]) if path else ""
    return name or default
