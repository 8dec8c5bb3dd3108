"""Search over a catalog (`lash_gateway.export._search`): words as people read names, and BM25 ranking that puts what a
query asks for first. The retrieval quality over 300+ real tools is `bench/bench_search.py`'s to measure."""

from __future__ import annotations

import itertools
from typing import Any

from lash_gateway.export._search import (
    CALL_TOOL,
    MAX_FIELD,
    MAX_LIMIT,
    MAX_QUERY_WORDS,
    SEARCH_TOOLS,
    ToolIndex,
    words,
)


def tool(name: str, description: str = "", *arguments: str) -> dict[str, Any]:
    properties = {argument: {"type": "string"} for argument in arguments}
    return {"name": name, "description": description, "inputSchema": {"type": "object", "properties": properties}}


def names(found: list[Any]) -> list[str]:
    return [found_tool["name"] for found_tool in found]


def test_names_split_as_people_read_them() -> None:
    assert words("github__get_file_contents") == words("github get file contents")
    assert words("createPullRequest") == words("create pull request")
    assert words("listS3Buckets") == words("list s 3 buckets")
    assert words("HTTPServer v2") == ["http", "server", "v", "2"]


def test_common_words_are_dropped_and_forms_meet_at_a_stem() -> None:
    assert words("Search the files for what I want") == ["search", "file"]
    assert words("searching") == words("search") and words("repositories") == words("repository")
    assert words("is") == [] and words("") == []


def test_a_name_match_ranks_above_a_mention_in_a_description() -> None:
    index = ToolIndex.of(
        [
            tool("send_email", "Send a message to a recipient."),
            tool("list_events", "List calendar events, for example an email reminder."),
            tool("delete_file", "Delete a file."),
        ]
    )
    assert names(index.search("email someone")) == ["send_email", "list_events"]


def test_argument_names_count() -> None:
    index = ToolIndex.of([tool("lookup", "Look something up.", "postcode"), tool("weather", "Today's weather.")])
    assert names(index.search("postcode")) == ["lookup"]


def test_rare_words_weigh_more_than_common_ones() -> None:
    index = ToolIndex.of(
        [
            tool("get_issue", "Get an issue of a repository."),
            tool("get_repository", "Get a repository."),
            tool("get_branch", "Get a branch of a repository."),
        ]
    )
    assert names(index.search("get issue"))[0] == "get_issue"


def test_no_match_and_no_words_find_nothing_and_limit_caps_the_matches() -> None:
    index = ToolIndex.of([tool(f"read_{n}", "Read a record.") for n in range(30)])
    assert index.search("launch rockets") == [] and index.search("the of a") == []
    assert len(index.search("read record")) == 5
    assert len(index.search("read record", limit=12)) == 12
    assert ToolIndex.of([]).search("anything") == []


def test_the_search_mode_tools_are_valid_tool_definitions() -> None:
    for definition in (SEARCH_TOOLS, CALL_TOOL):
        assert definition["inputSchema"]["type"] == "object"
        assert set(definition["inputSchema"]["required"]) <= set(definition["inputSchema"]["properties"])


def test_words_beyond_ascii_stay_whole_and_runs_too_long_for_words_are_left_out() -> None:
    assert words("Résumé für Zürich") == words("résumé") + words("für") + words("zürich")
    assert words("sha " + "a" * 64) == ["sha"]


def test_hostile_sizes_cost_no_more_than_their_bounded_part() -> None:
    """A megabyte of query or description counts for its first MAX_FIELD characters, a query for its first
    MAX_QUERY_WORDS distinct words, a limit for MAX_LIMIT matches at most."""
    huge = " ".join(f"w{n}x" for n in range(200_000))
    assert len(words(huge)) <= MAX_FIELD
    index = ToolIndex.of([tool(f"t{n}", huge) for n in range(3)] + [tool(f"read_{n}", "Read.") for n in range(80)])
    assert names(index.search(huge))[:1] in (["t0"], ["t1"], ["t2"])
    assert len(index.search("read", limit=10_000)) == MAX_LIMIT
    assert index.search("read", limit=0) == [] and index.search("read", limit=-1) == []
    unknown = ["".join(letters) for letters in itertools.product("bcdfghjklm", repeat=4)]  # 10,000 non-words
    assert index.search(" ".join([*unknown[:MAX_QUERY_WORDS], "read"])) == []  # past the words that count
    assert len(index.search(" ".join(["read", *unknown]))) == 5


def test_related_words_count_for_half_so_a_request_in_other_words_still_finds_the_tool() -> None:
    index = ToolIndex.of([tool("delete_file", "Delete a file."), tool("read_file", "Read a file.")])
    assert names(index.search("erase a file"))[0] == "delete_file"
    exact = ToolIndex.of([tool("remove_entry", "Remove an entry."), tool("delete_entry", "Delete an entry.")])
    assert names(exact.search("remove entry"))[0] == "remove_entry"  # the word asked for outweighs its relatives
