"""Which URIs a resource template matches (`_uri_template`), and the routing rule built on it (`_merged`)."""

from __future__ import annotations

import pytest

from lash_gateway._uri_template import matches
from lash_gateway.upstream._catalog import Catalog
from lash_gateway.upstream._merged import Added, merge


@pytest.mark.parametrize(
    ("template", "uri", "expected"),
    [
        ("test://big/{size}", "test://big/100", True),
        ("test://big/{size}", "test://big/", False),
        ("test://big/{size}", "test://big/1/2", False),
        ("items://{kind}/{id}", "items://fruit/apple", True),
        ("file:///{+path}", "file:///a/b/c.txt", True),
        ("search://q{?text,limit}", "search://q?text=a&limit=2", True),
        ("search://q{?text,limit}", "search://q", True),
        ("docs://{name}.md", "docs://readme.md", True),
        ("docs://{name}.md", "docs://readme.txt", False),
        ("a.b://{x}", "aXb://y", False),  # literal dots are literal
        ("broken://{", "broken://{", False),
        ("broken://{}", "broken://x", False),
        ("x://{a}{b}", "x://ab", False),  # nothing tells where one ends
        ("x://{+path}{?q}", "x://a/b?q=1", True),
        ("data://report{.format}", "data://report.csv.gz", True),
        ("data://report{.format}", "data://report.", False),
        ("x://{id}", "x://" + "a" * 10_000, False),  # longer than MAX_URI_LENGTH
    ],
)
def test_matches(template: str, uri: str, expected: bool) -> None:
    assert matches(template, uri) is expected


def _catalog(*uris: str, templates: tuple[str, ...] = (), prompts: tuple[str, ...] = ()) -> Catalog:
    return Catalog(
        tuple({"uri": uri, "name": uri} for uri in uris),
        tuple({"uriTemplate": t, "name": t} for t in templates),
        tuple({"name": p} for p in prompts),
    )


def test_listed_uris_go_to_the_first_server_that_lists_them_and_the_others_hear_of_it() -> None:
    merged = merge(
        {"a": _catalog("x://1", "x://2"), "b": _catalog("x://2", "x://3")},
        {"a": "a", "b": "b"},
    )
    assert [r["uri"] for r in merged.resources] == ["x://1", "x://2", "x://3"]
    assert merged.server_for_uri("x://2") == "a"
    assert merged.server_for_uri("x://3") == "b"
    assert merged.conflicts == {"b": ("resource 'x://2' is also listed by 'a', which serves it",)}


def test_a_uri_or_template_a_server_serves_stays_its_own_when_an_earlier_server_adds_it_later() -> None:
    parts = {"a": "a", "b": "b"}
    before = merge({"a": _catalog(), "b": _catalog("x://2", templates=("x://{id}",))}, parts)
    catalogs = {"a": _catalog("x://2", templates=("x://{id}",)), "b": _catalog("x://2", templates=("x://{id}",))}
    connected = merge(catalogs, parts, before)  # `a` listed them when it connected (last): its place decides
    assert (connected.server_for_uri("x://2"), connected.server_for_template("x://{id}")) == ("a", "a")
    added: list[Added] = [("a", "uri", "x://2"), ("a", "template", "x://{id}")]
    kept = merge(catalogs, parts, before, added)  # `a` added them at runtime: `b` keeps its reads
    assert (kept.server_for_uri("x://2"), kept.server_for_template("x://{id}")) == ("b", "b")
    assert kept.server_for_uri("x://9") == "b"
    assert [r["uri"] for r in kept.resources] == ["x://2"] and len(kept.templates) == 1
    assert "resource 'x://2' is also listed by 'b'" in kept.conflicts["a"][0]


def test_a_template_added_later_matches_after_every_template_listed_on_connecting() -> None:
    """`a` (attached first) adds `file:///{dir}/{name}` at runtime: the URIs `b`'s `file:///x/{name}` matches still
    go to `b`; the others, which no template served, go to `a`."""
    parts = {"a": "a", "b": "b"}
    catalogs = {"a": _catalog(templates=("file:///{dir}/{name}",)), "b": _catalog(templates=("file:///x/{name}",))}
    merged = merge(catalogs, parts, later=[("a", "template", "file:///{dir}/{name}")])
    assert merged.server_for_uri("file:///x/secret") == "b"
    assert merged.server_for_uri("file:///y/other") == "a"
    assert merge(catalogs, parts).server_for_uri("file:///x/secret") == "a"  # listed on connecting: attach order


def test_a_listed_uri_wins_over_an_earlier_servers_template() -> None:
    merged = merge(
        {"a": _catalog(templates=("x://{id}",)), "b": _catalog("x://7", templates=("x://{id}",))},
        {"a": "a", "b": "b"},
    )
    assert merged.server_for_uri("x://7") == "b"
    assert merged.server_for_uri("x://8") == "a"
    assert merged.server_for_template("x://{id}") == "a"
    assert "resource template 'x://{id}'" in merged.conflicts["b"][0]
    assert merged.server_for_uri("y://1") is None


def test_prompts_are_named_like_tools() -> None:
    merged = merge(
        {"My Docs": _catalog(prompts=("greet", "Greet")), "b": _catalog(prompts=("greet",))},
        {"My Docs": "my_docs", "b": "b"},
    )
    names = [p["name"] for p in merged.prompts]
    assert names[0] == "mcp__my_docs__greet"
    assert names[1].startswith("mcp__my_docs__greet_")  # "Greet" normalises alike: a digest tells them apart
    assert names[2] == "mcp__b__greet"
    assert merged.prompt_routes["mcp__b__greet"] == ("b", "greet")
    assert merged.prompt_routes[names[1]] == ("My Docs", "Greet")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("template", "uri"),
    [
        ("data://report{.format}", "data://report" + ".a" * 4000 + "/"),
        ("x://{a}-{b}-{c}-{d}-{e}-{f}", "x://" + "-a" * 4000 + "/"),
        ("x://{+a}/{+b}/{+c}/{+d}", "x://" + "/a" * 4000 + "?"),
    ],
)
def test_a_crafted_uri_cannot_stall_the_matcher(template: str, uri: str) -> None:
    """Templates come from servers and URIs from clients: a backtracking pattern would let one read take the
    event loop for minutes. Every match is linear in the URI's length."""
    for _ in range(100):
        matches(template, uri)
