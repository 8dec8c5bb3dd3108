"""Naming rules: lash names of upstream tools and the names exported to clients."""

from __future__ import annotations

import hashlib
import random
import string

import pytest

from lash_gateway._naming import (
    MAX_TOOL_NAME_LENGTH,
    ToolRef,
    assign_server_parts,
    assign_tool_names,
    export_name,
    export_names,
    is_valid_tool_name,
    normalize,
)
from lash_gateway.upstream._catalog import Catalog
from lash_gateway.upstream._merged import merge


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("time", "time"),
        ("My-Docs", "my_docs"),
        ("get.file v2", "get_file_v2"),
        ("a--b", "a__b"),
        ("Tool42", "tool42"),
        ("Café", "caf_"),
        ("", "_"),
        ("__x__", "__x__"),
    ],
)
def test_normalize_lowercases_and_folds_everything_but_ascii_letters_and_digits(part: str, expected: str) -> None:
    assert normalize(part) == expected


def test_tool_gets_mcp_server_tool_name_and_keeps_its_upstream_name() -> None:
    names = assign_tool_names({"Time": ["get_current_time", "Convert-Time"]})
    assert dict(names.tools) == {
        "mcp__time__get_current_time": ToolRef("Time", "get_current_time"),
        "mcp__time__convert_time": ToolRef("Time", "Convert-Time"),
    }
    assert names.name_of("Time", "Convert-Time") == "mcp__time__convert_time"


def test_servers_whose_names_normalise_alike_do_not_collide() -> None:
    names = assign_tool_names({"my_docs": ["search"], "My-Docs": ["search"]})
    assert names.server_parts == {"my_docs": "my_docs", "My-Docs": f"my_docs_{sha('My-Docs')[:6]}"}
    assert list(names.tools) == ["mcp__my_docs__search", f"mcp__my_docs_{sha('My-Docs')[:6]}__search"]


def test_first_attached_server_keeps_the_plain_name() -> None:
    parts = assign_server_parts(["My-Docs", "my_docs"])
    assert parts == {"My-Docs": "my_docs", "my_docs": f"my_docs_{sha('my_docs')[:6]}"}


def test_attaching_a_server_never_renames_earlier_servers_tools() -> None:
    before = assign_tool_names({"docs": ["search", "Fetch"], "git": ["log"]})
    after = assign_tool_names({"docs": ["search", "Fetch"], "git": ["log"], "DOCS": ["search"], "Git": ["log"]})
    for name, ref in before.tools.items():
        assert after.tools[name] == ref
    assert len(after.tools) == 5


def test_tools_of_one_server_that_normalise_alike_do_not_collide() -> None:
    names = assign_tool_names({"fs": ["Get-File", "get_file", "get.file"]})
    assert len(names.tools) == 3
    assert names.name_of("fs", "get_file") == "mcp__fs__get_file"  # the name already in normal form wins
    assert names.name_of("fs", "Get-File") == f"mcp__fs__get_file_{sha('Get-File')[:6]}"
    assert names.name_of("fs", "get.file") == f"mcp__fs__get_file_{sha('get.file')[:6]}"


def test_tool_names_do_not_depend_on_upstream_listing_order() -> None:
    tools = ["Get-File", "get.file", "GET_FILE", "list"]
    expected = assign_tool_names({"fs": tools}).by_ref
    for seed in range(5):
        shuffled = tools[:]
        random.Random(seed).shuffle(shuffled)
        assert assign_tool_names({"fs": shuffled}).by_ref == expected


def test_tools_keep_the_upstream_listing_order() -> None:
    names = assign_tool_names({"a": ["zeta", "alpha"], "b": ["mid"]})
    assert list(names.tools) == ["mcp__a__zeta", "mcp__a__alpha", "mcp__b__mid"]


@pytest.mark.parametrize("servers", [{"a__b": ["c"], "a": ["b__c"]}, {"a": ["b__c"], "a__b": ["c"]}])
def test_names_that_meet_across_the_separator_go_to_the_longer_part(servers: dict[str, list[str]]) -> None:
    # "a__b" + "c" and "a" + "b__c" both spell mcp__a__b__c: it is a__b's, whichever came first.
    names = assign_tool_names(servers)
    assert names.name_of("a__b", "c") == "mcp__a__b__c"
    assert names.name_of("a", "b__c") == f"mcp__a__b__c_{sha('b__c')[:6]}"


def test_a_tool_added_later_takes_no_name_another_tool_holds() -> None:
    """`a` adds `b__c` at runtime, whose name spells `a__b`'s `mcp__a__b__c`; `fs` adds `get_file` beside its
    `Get-File`: each newcomer gets the suffix, and each tool keeps the name clients know."""
    before = assign_tool_names({"a": [], "a__b": ["c"], "fs": ["Get-File"]})
    later = {ToolRef("a", "b__c"), ToolRef("fs", "get_file")}
    after = assign_tool_names(
        {"a": ["b__c"], "a__b": ["c"], "fs": ["get_file", "Get-File"]}, held=before.by_ref, later=later
    )
    assert after.name_of("a__b", "c") == "mcp__a__b__c"
    assert after.name_of("fs", "Get-File") == "mcp__fs__get_file"
    assert after.name_of("a", "b__c") == f"mcp__a__b__c_{sha('b__c')[:6]}"
    assert after.name_of("fs", "get_file") == f"mcp__fs__get_file_{sha('get_file')[:6]}"
    # A later tool keeps what it was given, whatever its form, while nobody listed when connecting claims it.
    again = assign_tool_names(
        {"a": ["b__c"], "a__b": ["c"], "fs": ["get_file", "Get-File"]}, held=after.by_ref, later=later
    )
    assert again.by_ref == after.by_ref


def test_what_servers_list_when_they_connect_is_named_by_their_place_and_an_addition_after_them() -> None:
    """Two servers named by their tools alone (`prefix: false`), `a` attached first: when `a` lists `x` on
    connecting it gets `mcp__x`, even after `b` held it; when `a` adds `x` later, `b` keeps it."""
    parts = {"a": "", "b": ""}
    held = assign_tool_names({"a": [], "b": ["x"]}, parts).by_ref
    connected = assign_tool_names({"a": ["x"], "b": ["x"]}, parts, held)
    assert [connected.name_of("a", "x"), connected.name_of("b", "x")] == ["mcp__x", f"mcp__x_{sha('x')[:6]}"]
    changed = assign_tool_names({"a": ["x"], "b": ["x"]}, parts, held, later={ToolRef("a", "x")})
    assert [changed.name_of("a", "x"), changed.name_of("b", "x")] == [f"mcp__x_{sha('x')[:6]}", "mcp__x"]


def test_a_server_whose_part_changed_is_named_afresh() -> None:
    """A server replaced with `prefix: false` (part "") or another part holds none of its former names."""
    before = assign_tool_names({"docs": ["add", "Add"]})
    for part, expected in (("", "mcp__add"), ("docs_2", "mcp__docs_2__add")):
        after = assign_tool_names({"docs": ["add", "Add"]}, {"docs": part}, held=before.by_ref)
        assert after.name_of("docs", "add") == expected
        assert after.name_of("docs", "Add") == f"{expected}_{sha('Add')[:6]}"
    # A former part that starts with a tool's name and `_` ("time" of "time_api") is no collision suffix.
    before = assign_tool_names({"time_api": ["time", "now"], "t": ["t"]})
    after = assign_tool_names({"time_api": ["time", "now"], "t": ["t"]}, {"time_api": "", "t": ""}, before.by_ref)
    assert [after.name_of("time_api", "time"), after.name_of("time_api", "now")] == ["mcp__time", "mcp__now"]
    assert after.name_of("t", "t") == "mcp__t"


def test_a_prompt_added_later_takes_no_name_another_prompt_holds() -> None:
    parts = {"a": "a", "a__b": "a__b", "c": ""}
    before = merge({"a": Catalog(), "a__b": Catalog(), "c": Catalog(prompts=({"name": "a__b__greet"},))}, parts)
    catalogs = {
        "a": Catalog(),
        "a__b": Catalog(prompts=({"name": "greet"},)),
        "c": Catalog(prompts=({"name": "a__b__greet"},)),
    }
    assert merge(catalogs, parts, before).prompt_routes["mcp__a__b__greet"] == ("a__b", "greet")
    later = merge(catalogs, parts, before, [("a__b", "prompt", "greet")])
    assert later.prompt_routes["mcp__a__b__greet"] == ("c", "a__b__greet")


def test_a_name_that_already_carries_the_suffix_still_gets_a_unique_name() -> None:
    suffixed = f"x_{sha('X')[:6]}"
    parts = assign_server_parts(["x", suffixed, "X"])
    assert len(set(parts.values())) == 3
    assert parts["X"] == f"x_{sha('X')[:8]}"  # the digest grows past the taken form


def test_a_tool_listed_twice_gets_one_name() -> None:
    names = assign_tool_names({"s": ["t", "t"]})
    assert list(names.tools) == ["mcp__s__t"]


def test_same_inputs_give_same_names() -> None:
    servers = {"My-Docs": ["Search", "search"], "my_docs": ["search"], "a": ["b__c"], "a__b": ["c"]}
    assert assign_tool_names(servers) == assign_tool_names(dict(servers))


def test_many_random_names_are_all_unique() -> None:
    rng = random.Random(0)

    def word(length: int) -> str:
        return "".join(rng.choice("aA-_.1 ") for _ in range(length))

    servers = {word(3): [word(2) for _ in range(20)] for _ in range(40)}
    names = assign_tool_names(servers)
    expected = sum(len(set(tools)) for tools in servers.values())
    assert len(names.tools) == len(names.by_ref) == expected
    assert len(set(names.server_parts.values())) == len(servers)


def test_unknown_tool_lookup_raises_key_error() -> None:
    with pytest.raises(KeyError):
        assign_tool_names({"s": ["t"]}).name_of("s", "u")


def test_export_drops_the_mcp_prefix() -> None:
    assert export_name("mcp__time__now") == "time__now"


def test_export_keeps_plugin_tool_names() -> None:
    assert export_name("read_file") == "read_file"
    assert export_name("mcp__") == "mcp__"


def test_long_names_are_shortened_to_the_limit_with_a_digest_of_the_full_name() -> None:
    lash_name = "mcp__" + "s" * 30 + "__" + "t" * 60
    exported = export_name(lash_name)
    assert len(exported) == MAX_TOOL_NAME_LENGTH
    assert exported == ("s" * 30 + "__" + "t" * 60)[:55] + "_" + sha(lash_name)[:8]
    assert is_valid_tool_name(exported)


def test_name_exactly_at_the_limit_is_not_shortened() -> None:
    assert export_name("mcp__" + "x" * 64) == "x" * 64


def test_shortening_honours_a_custom_limit() -> None:
    exported = export_name("mcp__" + "x" * 40, limit=20)
    assert len(exported) == 20
    assert exported == "x" * 11 + "_" + sha("mcp__" + "x" * 40)[:8]


def test_names_differing_only_after_the_cut_stay_distinct() -> None:
    a = export_name("mcp__" + "x" * 70 + "a")
    b = export_name("mcp__" + "x" * 70 + "b")
    assert a != b


def test_characters_outside_the_allowed_set_are_folded_and_hashed() -> None:
    dotted, underscored = export_name("read.file"), export_name("read_file")
    assert dotted == "read_file_" + sha("read.file")[:8]
    assert dotted != underscored
    assert is_valid_tool_name(dotted)


def test_export_rejects_an_empty_name_and_a_tiny_limit() -> None:
    with pytest.raises(ValueError, match="empty"):
        export_name("")
    with pytest.raises(ValueError, match="at least 10"):
        export_name("mcp__a__b", limit=9)


def test_export_names_are_unique_when_dropping_the_prefix_meets_a_plugin_tool() -> None:
    exported = export_names(["mcp__time__now", "time__now", "mcp__time__zone"])
    assert exported["time__now"] == "time__now"
    assert exported["mcp__time__now"] == "time__now_" + sha("mcp__time__now")[:8]
    assert exported["mcp__time__zone"] == "time__zone"
    assert list(exported) == ["mcp__time__now", "time__now", "mcp__time__zone"]


def test_export_names_do_not_depend_on_input_order() -> None:
    names = ["mcp__a__b", "a__b", "mcp__" + "z" * 80, "z" * 80, "q.r", "q_r"]
    expected = export_names(names)
    assert export_names(reversed(names)) == expected
    assert len(set(expected.values())) == len(names)
    assert all(is_valid_tool_name(name) for name in expected.values())


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("time__now", True),
        ("A-b_9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("a.b", False),
        ("a b", False),
        ("name\n", False),
        ("ü", False),
    ],
)
def test_is_valid_tool_name_follows_the_claude_and_openai_rule(name: str, valid: bool) -> None:
    assert is_valid_tool_name(name) is valid


def test_every_exported_name_of_random_inputs_is_valid() -> None:
    rng = random.Random(1)
    alphabet = string.ascii_letters + string.digits + "_-. /:é"
    for _ in range(200):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 100)))
        assert is_valid_tool_name(export_name(name)), name
        assert is_valid_tool_name(export_name("mcp__" + name)), name


def test_a_server_without_prefix_names_its_tools_by_their_own_names() -> None:
    names = assign_tool_names({"conf": ["test_simple_text", "echo"], "b": ["echo"]}, {"conf": "", "b": "b"})
    assert names.name_of("conf", "test_simple_text") == "mcp__test_simple_text"
    assert export_name(names.name_of("conf", "test_simple_text")) == "test_simple_text"
    assert names.name_of("b", "echo") == "mcp__b__echo"
