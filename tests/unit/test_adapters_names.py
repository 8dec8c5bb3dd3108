"""The reversible map between lash tool names and the names Anthropic and OpenAI accept (`adapters._names`)."""

from __future__ import annotations

import re

import pytest

from adapters._names import MAX_NAME_LENGTH, map_names

PROVIDER_RULE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

LONG = "mcp__a_server_with_a_rather_long_name__a_tool_whose_name_is_also_quite_long"


def test_names_that_fit_pass_through_unchanged() -> None:
    names = ["echo", "mcp__time__get_current_time", "Tool-Name_2", "x" * MAX_NAME_LENGTH]
    mapping = map_names(names)
    assert dict(mapping.to_model) == {name: name for name in names}
    assert dict(mapping.to_lash) == {name: name for name in names}


def test_a_name_over_64_characters_is_shortened_and_maps_back() -> None:
    assert len(LONG) > MAX_NAME_LENGTH
    mapping = map_names([LONG, "echo"])
    model = mapping.model_name(LONG)
    assert PROVIDER_RULE.match(model)
    assert len(model) == MAX_NAME_LENGTH
    assert model.startswith(LONG[:40])
    assert mapping.lash_name(model) == LONG


def test_disallowed_characters_are_folded_and_the_name_gets_a_hash_suffix() -> None:
    mapping = map_names(["weather.forecast", "größe/messen", "with space"])
    for lash, model in mapping.to_model.items():
        assert PROVIDER_RULE.match(model), model
        assert mapping.lash_name(model) == lash
    assert re.fullmatch(r"weather_forecast_[0-9a-f]{8}", mapping.model_name("weather.forecast"))
    assert re.fullmatch(r"gr__e_messen_[0-9a-f]{8}", mapping.model_name("größe/messen"))


def test_a_mapped_name_depends_on_that_name_alone() -> None:
    alone = map_names(["a.b"]).model_name("a.b")
    crowded = map_names(["z", "a.b", LONG, "c.d"]).model_name("a.b")
    assert alone == crowded
    assert map_names(["c.d", "a.b"]).model_name("a.b") == alone


def test_names_that_sanitise_alike_stay_distinct() -> None:
    mapping = map_names(["a.b", "a/b", "a b", "a_b"])
    assert mapping.model_name("a_b") == "a_b"
    assert len(set(mapping.to_model.values())) == 4
    for lash, model in mapping.to_model.items():
        assert mapping.lash_name(model) == lash


def test_a_tool_named_like_another_tools_mapped_form_keeps_its_name() -> None:
    """The fitting name wins; the other gets a longer digest, in either surface order."""
    squatter = map_names(["a.b"]).model_name("a.b")
    for names in (["a.b", squatter], [squatter, "a.b"]):
        mapping = map_names(names)
        assert mapping.model_name(squatter) == squatter
        moved = mapping.model_name("a.b")
        assert moved != squatter
        assert re.fullmatch(r"a_b_[0-9a-f]{12}", moved)
        assert mapping.lash_name(moved) == "a.b"
        assert mapping.lash_name(squatter) == squatter


def test_many_long_names_with_a_shared_prefix_map_one_to_one() -> None:
    names = [f"{LONG}_{i}" for i in range(2000)]
    mapping = map_names(names)
    models = list(mapping.to_model.values())
    assert len(set(models)) == len(names)
    assert all(PROVIDER_RULE.match(model) for model in models)
    assert all(mapping.lash_name(mapping.model_name(name)) == name for name in names)


def test_an_unknown_model_name_maps_to_none() -> None:
    mapping = map_names(["echo"])
    assert mapping.lash_name("echo2") is None
    with pytest.raises(KeyError):
        mapping.model_name("echo2")


def test_the_map_keeps_surface_order_and_cannot_be_changed() -> None:
    mapping = map_names(["b", LONG, "a"])
    assert list(mapping.to_model) == ["b", LONG, "a"]
    with pytest.raises(TypeError):
        mapping.to_model["b"] = "c"  # type: ignore[index]


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct"):
        map_names(["echo", "echo"])
