"""The tool output budget: text cut with a note saying what was cut, binary parts over budget replaced,
failures and structured content untouched."""

from __future__ import annotations

import base64

import pytest

from lash_core import (
    DEFAULT_MAX_TEXT_CHARS,
    AudioPart,
    ContentPart,
    FailureClass,
    ImagePart,
    LashCore,
    ResourceLinkPart,
    ResourcePart,
    TextPart,
    ToolCall,
    ToolOutputBudget,
    ToolOutputBudgetPluginFactory,
    ToolResult,
    apply_budget,
)
from lash_core.testing import CallbackPluginFactory, StaticToolProvider, returns, simple_tool


def b64(size: int) -> str:
    return base64.b64encode(b"\x00" * size).decode()


def test_text_under_the_budget_is_returned_as_is() -> None:
    result = ToolResult.ok("x" * 10)

    assert apply_budget(result, ToolOutputBudget(max_text_chars=10)) is result


def test_text_over_the_budget_is_cut_with_a_note_saying_what_was_cut() -> None:
    result = apply_budget(ToolResult.ok("a" * 1500), ToolOutputBudget(max_text_chars=1000))

    assert result.content == (
        TextPart("a" * 1000),
        TextPart("[output truncated: kept 1,000 of 1,500 characters, cut 500; the budget is 1,000 characters]"),
    )


def test_the_text_budget_spans_parts_and_drops_parts_past_it() -> None:
    image = ImagePart(b64(3), "image/png")
    result = ToolResult.from_parts([TextPart("12345"), image, TextPart("67890"), TextPart("abc")])

    budgeted = apply_budget(result, ToolOutputBudget(max_text_chars=7))

    assert budgeted.content == (
        TextPart("12345"),
        image,
        TextPart("67"),
        TextPart("[output truncated: kept 7 of 13 characters, cut 6; the budget is 7 characters]"),
    )


def test_text_resources_count_against_the_text_budget_and_keep_their_fields() -> None:
    resource = ResourcePart("file:///notes.txt", "text/plain", text="r" * 8, annotations={"audience": ["user"]})
    result = ToolResult.from_parts([TextPart("t" * 4), resource])

    budgeted = apply_budget(result, ToolOutputBudget(max_text_chars=6))

    cut = budgeted.content[1]
    assert cut == ResourcePart("file:///notes.txt", "text/plain", text="rr", annotations={"audience": ["user"]})
    assert "kept 6 of 12 characters, cut 6" in budgeted.text()


def test_resource_links_count_against_the_text_budget_and_one_that_does_not_fit_is_left_out() -> None:
    """A link's name and description are text the model reads: an upstream must not pass 10 MB through them."""
    short = ResourceLinkPart("file:///a", "a", description="first")  # 9 + 1 + 5 characters
    huge = ResourceLinkPart("file:///b", "N" * 5_000, description="D" * 5_000)
    result = ToolResult.from_parts([TextPart("t" * 4), short, huge, TextPart("after")])

    budgeted = apply_budget(result, ToolOutputBudget(max_text_chars=100))

    assert budgeted.content[:2] == (TextPart("t" * 4), short)
    assert budgeted.content[2:] == (
        TextPart("[output truncated: kept 19 of 10,033 characters, cut 10,014; the budget is 100 characters]"),
    )


@pytest.mark.parametrize(
    "part",
    [
        ResourcePart("x://" + "u" * 5_000, "text/plain", text="t"),
        ResourcePart("x://r", "m" * 5_000, text="t"),
        ImagePart(b64(3), "image/" + "p" * 5_000),
        ResourceLinkPart("x://l", "l", mime_type="m" * 5_000),
    ],
    ids=["resource-uri", "resource-mime", "image-mime", "link-mime"],
)
def test_a_part_with_a_uri_or_mime_type_past_any_real_one_is_left_out_with_a_note(part: ContentPart) -> None:
    budgeted = apply_budget(ToolResult.from_parts([TextPart("kept"), part]), ToolOutputBudget(max_text_chars=100_000))

    assert budgeted.content[0] == TextPart("kept")
    assert len(budgeted.content) == 2 and isinstance(budgeted.content[1], TextPart)
    assert "omitted" in budgeted.content[1].text and "5,0" in budgeted.content[1].text
    assert apply_budget(ToolResult.from_parts([part]), ToolOutputBudget(max_text_chars=None)).content == (part,)


def test_a_zero_text_budget_keeps_only_the_note() -> None:
    budgeted = apply_budget(ToolResult.ok("hello"), ToolOutputBudget(max_text_chars=0))

    assert budgeted.content == (
        TextPart("[output truncated: kept 0 of 5 characters, cut 5; the budget is 0 characters]"),
    )


def test_no_text_limit_keeps_any_text() -> None:
    result = ToolResult.ok("x" * (DEFAULT_MAX_TEXT_CHARS * 2))

    assert apply_budget(result, ToolOutputBudget(max_text_chars=None)) is result


def test_failures_are_never_truncated() -> None:
    failure = ToolResult.err("e" * 500, failure_class=FailureClass.TOOL_ERROR)

    assert apply_budget(failure, ToolOutputBudget(max_text_chars=10, max_binary_bytes=0)) is failure


def test_structured_content_is_untouched_when_text_is_cut() -> None:
    rows = {"rows": ["r" * 50] * 10}
    result = ToolResult.ok(rows)

    budgeted = apply_budget(result, ToolOutputBudget(max_text_chars=20))

    assert budgeted.structured is rows
    assert budgeted.content[0] == TextPart(result.text()[:20])
    assert "cut" in budgeted.text()


@pytest.mark.parametrize(
    ("part", "kind"),
    [
        (ImagePart(b64(2000), "image/png"), "image (image/png"),
        (AudioPart(b64(2000), "audio/wav"), "audio (audio/wav"),
        (ResourcePart("file:///b.bin", blob=b64(2000)), "resource (binary"),
    ],
)
def test_binary_parts_over_the_binary_budget_are_replaced_by_a_note(part: ContentPart, kind: str) -> None:
    result = ToolResult.from_parts([TextPart("before"), part])

    budgeted = apply_budget(result, ToolOutputBudget(max_binary_bytes=1024))

    assert budgeted.content == (
        TextPart("before"),
        TextPart(f"[{kind}, 2,000 bytes) omitted: over the 1,024-byte budget for one binary part]"),
    )


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 1000, 1001, 1002])
def test_a_binary_part_exactly_at_the_budget_is_kept(size: int) -> None:
    """Regression: the decoded size ignored base64 padding, so a part of exactly the budget was
    counted one or two bytes over it and dropped."""
    result = ToolResult.from_parts([ImagePart(b64(size), "image/png")])

    assert apply_budget(result, ToolOutputBudget(max_binary_bytes=size)) is result
    assert apply_budget(result, ToolOutputBudget(max_binary_bytes=size - 1)).content[0].type == "text"


def test_binary_budget_applies_to_each_part_and_leaves_links_alone() -> None:
    small, large = ImagePart(b64(10), "image/png"), ImagePart(b64(100), "image/png")
    link = ResourceLinkPart("file:///big", "big")

    budgeted = apply_budget(ToolResult.from_parts([small, large, link]), ToolOutputBudget(max_binary_bytes=50))

    assert budgeted.content[0] is small
    assert isinstance(budgeted.content[1], TextPart) and "100 bytes" in budgeted.content[1].text
    assert budgeted.content[2] is link


def test_the_default_budget_limits_text_but_not_binary() -> None:
    budget = ToolOutputBudget()

    assert (budget.max_text_chars, budget.max_binary_bytes) == (DEFAULT_MAX_TEXT_CHARS, None)
    result = ToolResult.from_parts([ImagePart(b64(10_000_000), "image/png")])
    assert apply_budget(result, budget) is result


@pytest.mark.parametrize("field", ["max_text_chars", "max_binary_bytes"])
def test_a_negative_limit_is_rejected_at_construction(field: str) -> None:
    with pytest.raises(ValueError, match=f"ToolOutputBudget.{field} must be >= 0 or None, got -1"):
        ToolOutputBudget(**{field: -1})


@pytest.mark.anyio
async def test_in_a_session_the_budget_applies_after_every_after_hook() -> None:
    async def inflate(call: ToolCall, result: ToolResult) -> ToolResult:
        return ToolResult.ok(result.text() * 100)

    provider = StaticToolProvider([simple_tool("t")], returns("0123456789"))
    core = (
        LashCore.builder()
        .configure_plugins(lambda s: s.replace(ToolOutputBudgetPluginFactory(ToolOutputBudget(max_text_chars=50))))
        .plugin(CallbackPluginFactory("inflate", lambda reg, ctx: reg.tool_calls().after(inflate)))
        .tools(provider)
        .build()
    )

    result = await core.session().call_tool("t", {})

    assert result.content[0] == TextPart("0123456789" * 5)
    assert "kept 50 of 1,000 characters, cut 950" in result.text()


@pytest.mark.anyio
async def test_in_a_session_failures_pass_the_budget_whole() -> None:
    long_error = ToolResult.err("trace " * 1000)
    provider = StaticToolProvider([simple_tool("t")], returns(long_error))
    core = LashCore.builder().configure_plugins(
        lambda s: s.replace(ToolOutputBudgetPluginFactory(ToolOutputBudget(max_text_chars=10)))
    )

    result = await core.tools(provider).build().session().call_tool("t", {})

    assert result is long_error
