"""Actions: named, schema-described operations a host invokes with `await session.invoke_action(name, args)`."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field

from lash_core import (
    ActionArgumentsError,
    ExclusiveRegistrationError,
    LashCore,
    PluginRegistrar,
    PluginSessionContext,
    UnknownActionError,
)
from lash_core.testing import CallbackPluginFactory

pytestmark = pytest.mark.anyio


class AttachArgs(BaseModel):
    server: str
    timeout: float = Field(30.0, gt=0)


async def echo_action(args: Any) -> Any:
    return {"got": args}


def with_actions(register: CallbackPluginFactory, *more: CallbackPluginFactory) -> LashCore:
    builder = LashCore.builder().plugin(register)
    for factory in more:
        builder.plugin(factory)
    return builder.build()


async def test_invoke_action_runs_the_handler_and_returns_its_value() -> None:
    factory = CallbackPluginFactory("admin", lambda reg, ctx: reg.actions().register("status", echo_action))
    session = with_actions(factory).session()

    assert await session.invoke_action("status", {"verbose": True}) == {"got": {"verbose": True}}
    assert await session.invoke_action("status") == {"got": None}


async def test_actions_are_listed_with_their_description_and_schema() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}

    def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        reg.actions().register("status", echo_action, description="Server status")
        reg.actions().register("rename", echo_action, description="Rename", input_schema=schema)
        reg.actions().register("attach", echo_action, input_model=AttachArgs)

    status, rename, attach = with_actions(CallbackPluginFactory("admin", register)).session().actions()

    assert (status.name, status.description, status.input_schema, status.input_model) == (
        "status",
        "Server status",
        {"type": "object"},
        None,
    )
    assert (rename.name, rename.input_schema) == ("rename", schema)
    assert attach.input_schema == AttachArgs.model_json_schema()
    assert attach.input_model is AttachArgs
    assert status.handler is echo_action


async def test_without_an_input_model_the_handler_receives_arguments_as_given() -> None:
    schema = {"type": "object", "required": ["name"]}
    factory = CallbackPluginFactory("a", lambda reg, ctx: reg.actions().register("x", echo_action, input_schema=schema))

    # The schema describes the action to hosts; only an input model is enforced.
    assert await with_actions(factory).session().invoke_action("x", [1, 2]) == {"got": [1, 2]}


async def test_with_an_input_model_the_handler_receives_the_validated_model() -> None:
    received: list[AttachArgs] = []

    async def attach(args: AttachArgs) -> str:
        received.append(args)
        return f"attached {args.server}"

    factory = CallbackPluginFactory(
        "admin", lambda reg, ctx: reg.actions().register("attach", attach, input_model=AttachArgs)
    )

    result = await with_actions(factory).session().invoke_action("attach", {"server": "docs"})

    assert result == "attached docs"
    assert received == [AttachArgs(server="docs", timeout=30.0)]


async def test_arguments_failing_the_input_model_raise_an_error_naming_action_and_fields() -> None:
    called: list[object] = []

    async def attach(args: object) -> None:
        called.append(args)

    factory = CallbackPluginFactory(
        "admin", lambda reg, ctx: reg.actions().register("attach", attach, input_model=AttachArgs)
    )
    session = with_actions(factory).session()

    with pytest.raises(ActionArgumentsError) as caught:
        await session.invoke_action("attach", {"timeout": -1})

    error = caught.value
    assert isinstance(error, ValueError)
    assert error.name == "attach"
    assert str(error).startswith("action 'attach': ")
    assert "server: Field required" in str(error)
    assert "timeout: Input should be greater than 0" in str(error)
    assert error.__cause__ is None and error.__suppress_context__
    assert called == []


async def test_no_arguments_for_an_input_model_are_validated_as_an_empty_object() -> None:
    factory = CallbackPluginFactory(
        "a", lambda reg, ctx: reg.actions().register("x", echo_action, input_model=AttachArgs)
    )

    with pytest.raises(ActionArgumentsError, match="server: Field required"):
        await with_actions(factory).session().invoke_action("x")


async def test_arguments_that_are_not_an_object_name_the_arguments_as_the_problem() -> None:
    factory = CallbackPluginFactory(
        "a", lambda reg, ctx: reg.actions().register("x", echo_action, input_model=AttachArgs)
    )

    with pytest.raises(ActionArgumentsError, match="action 'x': arguments: "):
        await with_actions(factory).session().invoke_action("x", "docs")


async def test_an_unknown_action_is_a_lookup_error_listing_the_known_ones() -> None:
    def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        reg.actions().register("status", echo_action)
        reg.actions().register("attach", echo_action)

    session = with_actions(CallbackPluginFactory("admin", register)).session()

    with pytest.raises(UnknownActionError) as caught:
        await session.invoke_action("detach", {})

    assert isinstance(caught.value, LookupError)
    assert caught.value.name == "detach"
    assert str(caught.value) == "no action named 'detach' (actions: attach, status)"


async def test_a_session_without_actions_says_there_are_none() -> None:
    with pytest.raises(UnknownActionError, match=r"\(actions: none\)"):
        await LashCore.builder().build().session().invoke_action("x")


async def test_handler_exceptions_propagate_unchanged() -> None:
    async def broken(args: object) -> None:
        raise RuntimeError("upstream refused")

    session = with_actions(CallbackPluginFactory("a", lambda reg, ctx: reg.actions().register("x", broken))).session()

    with pytest.raises(RuntimeError, match="upstream refused"):
        await session.invoke_action("x", {})


def test_two_plugins_registering_one_action_name_is_an_error_naming_both() -> None:
    first = CallbackPluginFactory("first", lambda reg, ctx: reg.actions().register("status", echo_action))
    second = CallbackPluginFactory("second", lambda reg, ctx: reg.actions().register("status", echo_action))

    with pytest.raises(ExclusiveRegistrationError) as caught:
        with_actions(first, second).session()

    assert (caught.value.category, caught.value.first, caught.value.second) == ("action 'status'", "first", "second")


async def test_actions_belong_to_the_session_whose_plugins_registered_them() -> None:
    def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        if ctx.is_root_session():

            async def whoami(args: object) -> str:
                return ctx.session_id

            reg.actions().register("whoami", whoami)

    core = with_actions(CallbackPluginFactory("who", register))
    first, second = core.session(), core.session()

    assert await first.invoke_action("whoami") == first.id
    assert await second.invoke_action("whoami") == second.id
    assert first.child("fork").actions() == ()


class CountingSchema(BaseModel):
    """A model that counts how often its JSON schema is generated."""

    generated: ClassVar[int] = 0
    name: str

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        CountingSchema.generated += 1
        return super().model_json_schema(*args, **kwargs)


async def test_an_action_input_models_schema_is_generated_once_not_per_session() -> None:
    """Regression: registering an action with `input_model` generated its JSON schema (about 250 µs)
    in every session build, against the contract that `build` does no schema compilation."""
    CountingSchema.generated = 0
    factory = CallbackPluginFactory(
        "a", lambda reg, ctx: reg.actions().register("x", echo_action, input_model=CountingSchema)
    )
    core = with_actions(factory)

    sessions = [core.session() for _ in range(3)] + [core.session().child("subagent")]

    assert CountingSchema.generated == 1
    assert all(s.actions()[0].input_schema == CountingSchema.model_json_schema() for s in sessions)
