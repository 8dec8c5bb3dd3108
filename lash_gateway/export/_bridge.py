"""An upstream's questions for a 2026-07-28 client, which cannot be sent requests: input-required rounds.

A 2026-07-28 request has no channel back to its client. When the upstream behind it asks (a handshake-era
server sends `elicitation/create`; a 2026-07-28 server returns input requests, which the upstream side asks
one by one), the gateway answers the client's request with an input-required result holding the questions and
a `requestState`, keeps the upstream call running, and resumes it when the client retries with its answers.
Questions asked at about the same time go out in one round.

The `requestState` is self-contained: the call's id and every answer the client gave so far, and an HMAC-SHA256
over them and the request (method and params) under a key of the gateway's, in its state directory, so every
process of one deployment shares it. A tampered or forged state is refused, and so is a state sent with another
request than its own. A retry that reaches the process holding the call resumes it; one that reaches another
process (or comes after the call ended) runs the request again there, with the answers the state carries given
to the same questions as they come up: the way a 2026-07-28 server itself treats a retry. A call whose client does
not come back within `ttl` seconds to answer a question gets an error for that question (and the upstream decides
what the call does then).

Where the call runs: a request the SDK serves must return its answer, so its call runs in a task of the export's
and the request waits for the outcome. A request the fast path serves can be answered from any task, so its call
runs in the request's own task (most calls never ask: no task, nothing held), and the first question answers the
request early (`ANSWER_NOW`, `AnsweredEarly`) while the call goes on; the retry waits for the outcome as above.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Protocol

import anyio
import mcp_types as types
from mcp import MCPError
from pydantic import BaseModel

from lash_core import ASKED_AS, Caller, CallerRequest, LogReporter, ProgressReporter

from ._asking import DEFAULT_ASK_TIMEOUT, Declared, caller_of

__all__ = ["ANSWER_NOW", "BATCH_WINDOW", "AnswerNow", "AnsweredEarly", "Bridges", "Round", "reporters"]

MAX_NAME: Final = 256
"""Characters of a server's name for its question the rounds keep (a longer one goes out as `qN`)."""
BATCH_WINDOW: Final = 0.02
"""Seconds a round waits, after its first question, for more questions to go out with it."""

_METHODS: Final[Mapping[CallerRequest, str]] = {
    "sampling": "sampling/createMessage",
    "elicitation": "elicitation/create",
    "roots": "roots/list",
}
AnswerNow = Callable[[dict[str, Any]], Awaitable[None]]
"""Sends a request's answer at once, from any task."""
ANSWER_NOW: Final[ContextVar[AnswerNow | None]] = ContextVar("lash_gateway.answer_now", default=None)
"""Set by a server path that can answer its request from any task (the fast path): calls then run in the request's
own task, and the first question is answered through it."""


class Round(Protocol):
    """The client's latest request of a call, on whichever path it came (each round is a request of its own, and a
    retry may take another path than the request before it): where the call's progress and log messages go now."""

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None: ...

    async def log(self, level: str, data: Any, logger: str | None = None) -> None: ...


Run = Callable[[Caller, Callable[[], Round]], Awaitable[dict[str, Any]]]
"""Runs the call with the caller to ask and a function that gives the client's latest request; returns its wire-form
result."""


@dataclass(eq=False)
class _Question:
    kind: CallerRequest
    params: Mapping[str, Any]
    sent: bool = False
    answered: anyio.Event = field(default_factory=anyio.Event)
    answer: Mapping[str, Any] | None = None


@dataclass(eq=False)
class _Bridge:
    """One call of a 2026-07-28 client that asked, held between the client's rounds."""

    id: str
    ttl: float
    """Seconds the client gets to answer a question."""
    context: Round
    """The client's latest request of this call."""
    binding: Callable[[], str]
    """A digest of the request (method and params, but the rounds' own): a state resumes only its request. Made
    when a state is signed: most calls never ask."""
    prefilled: dict[str, tuple[CallerRequest | None, Mapping[str, Any]]] = field(default_factory=dict)
    """Answers a retry brought for questions this run has not asked yet (it runs the request again)."""
    ahead: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """Answers a first request brought before any round, by the names its server gives its questions: taken only for
    a question of that name asked before the first round (a `qN` is a position, and a blind answer must not go to
    whatever comes first)."""
    answers: dict[str, tuple[CallerRequest | None, Mapping[str, Any]]] = field(default_factory=dict)
    """Every answer so far, by question key: what the next state carries."""
    questions: dict[str, _Question] = field(default_factory=dict)
    changed: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    """The call's: cancelled when the client gives up on a request of it (closes its stream)."""
    done: bool = False
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    keys: itertools.count[int] = field(default_factory=itertools.count)
    first_round: Callable[[], Awaitable[None]] | None = None
    """For a call running in its request's task: answers that request with the first round (see `Bridges`)."""

    def wake(self) -> None:
        changed, self.changed = self.changed, anyio.Event()
        changed.set()

    async def ask(self, kind: CallerRequest, params: Mapping[str, Any]) -> Mapping[str, Any]:
        named = ASKED_AS.get()
        key = self._key(named)
        known = self.prefilled.pop(key, None)
        if known is None and key == named and key in self.ahead:
            known = (kind, self.ahead.pop(key))
        if known is not None and known[0] in (None, kind):  # asked again, as before: answered as before
            self.answers[key] = (kind, known[1])
            return known[1]
        question = _Question(kind, params)
        self.questions[key] = question
        self.wake()
        try:
            if self.first_round is not None:  # the request is still unanswered: a round answers it, the call goes on
                await self.first_round()
            with anyio.move_on_after(self.ttl):
                await question.answered.wait()
        finally:
            del self.questions[key]
        if question.answer is None:
            raise MCPError(
                types.REQUEST_TIMEOUT, f"lash-gateway: the client did not answer {question.kind} within {self.ttl:g}s"
            )
        return question.answer

    def _key(self, named: str | None) -> str:
        """A question's key in its round: the name its server gave it (a 2026-07-28 server's), unless this call
        used that name already; else the next `qN` not in use. A call run again asks the same questions in the same
        order, so it gives them the same keys, and the answers its state carries find them."""
        if named is not None and len(named) <= MAX_NAME and named not in self.answers and named not in self.questions:
            return named
        while (key := f"q{next(self.keys)}") in self.answers or key in self.questions:
            pass
        return key

    def answer(self, responses: Mapping[str, Any]) -> None:
        """Take the client's answers; a question it left unanswered goes out again in the next round."""
        for key, response in responses.items():
            question = self.questions.get(key)
            if question is not None and question.sent and not question.answered.is_set():
                question.answer = _wire(response)
                self.answers[key] = (question.kind, question.answer)
                question.answered.set()
        for question in self.questions.values():
            if not question.answered.is_set():
                question.sent = False

    def unsent(self) -> dict[str, _Question]:
        return {key: q for key, q in self.questions.items() if not q.sent}


class Bridges:
    """The 2026-07-28 calls held between rounds; `spawn` runs each call in a task the export owns."""

    def __init__(
        self, spawn: Callable[..., object], key: bytes | None = None, ttl: float = DEFAULT_ASK_TIMEOUT
    ) -> None:
        self._spawn = spawn
        self.key = key or secrets.token_bytes(32)
        """Signs and checks `requestState` (replicas share one: see `McpExport.sign_rounds_with`)."""
        self._ttl = ttl
        self._held: dict[str, _Bridge] = {}

    @property
    def held(self) -> int:
        """Calls held now between their client's rounds (each waits for its retry)."""
        return len(self._held)

    async def serve(
        self,
        method: str,
        declared: Declared,
        params: types.RequestParams | Any,
        run: Run,
        context: Round,
    ) -> dict[str, Any]:
        """Start a call (or resume the one its `requestState` names) and return what the client gets now: the
        call's result, or an input-required result with the questions asked meanwhile. `declared`: what the client
        takes (the kinds of question it declared in the request that starts the call).

        Raises:
            MCPError: a state that was tampered with, or that belongs to another request.
        """
        state = getattr(params, "request_state", None)
        binding = partial(_binding, method, params)
        responses: Mapping[str, Any] = getattr(params, "input_responses", None) or {}
        held = None
        carried: dict[str, tuple[CallerRequest | None, Any]] = {}
        asked: dict[str, CallerRequest] = {}
        if state is not None:
            bridge_id, carried, asked = self._verified(state, binding())
            held = self._held.get(bridge_id)
        if held is not None:
            bridge = held
            bridge.context = context
            bridge.answer(responses)
        else:  # a new call, or a retry this process does not hold: the request runs (again) here
            bridge = _Bridge(secrets.token_urlsafe(16), self._ttl, context, binding)
            answers = {key: _wire(answer) for key, answer in responses.items()}
            if state is not None:  # those its state carries, and the answers to the round it names (as if held)
                round_ = {key: (asked[key], answer) for key, answer in answers.items() if key in asked}
                bridge.prefilled = {**carried, **round_}
            else:  # answers given ahead of any round
                bridge.ahead = answers
            answer_now = ANSWER_NOW.get()
            if answer_now is not None:
                return await self._run_here(bridge, _caller(bridge, declared), run, answer_now)
            self._held[bridge.id] = bridge
            self._spawn(self._run, bridge, _caller(bridge, declared), run)
        try:
            return await self._outcome(bridge)
        except anyio.get_cancelled_exc_class():
            bridge.scope.cancel()  # the client gave up on the call: so does the upstream
            raise

    async def _run_here(self, bridge: _Bridge, caller: Caller, run: Run, answer_now: AnswerNow) -> dict[str, Any]:
        """Run the call in this (the request's) task. Its first question answers the request with a round, and the
        bridge is held for the retry from then on.

        Raises:
            AnsweredEarly: the request was answered with a round; the call's outcome goes to its retry.
        """
        answered = False

        async def first_round() -> None:
            """Each asker comes here until the request is answered; the first past the window sends the round (with
            every question asked by then), unless the call ended meanwhile: its result is the answer then."""
            nonlocal answered
            with anyio.move_on_after(BATCH_WINDOW):  # the round's other questions, asked at about the same time
                while not bridge.done:
                    await bridge.changed.wait()
            if answered or bridge.done:
                return
            answered, bridge.first_round = True, None  # later questions go out in the retry's rounds
            self._held[bridge.id] = bridge  # for the retry; `_run` lets go of it when the call ends
            with anyio.CancelScope(shield=True):  # the request's answer goes out whole, even if its asker gives up
                await answer_now(self._round(bridge))

        bridge.first_round = first_round
        await self._run(bridge, caller, run)
        if answered:
            raise AnsweredEarly
        if bridge.error is not None:
            raise bridge.error
        if bridge.result is None:
            raise MCPError(types.INTERNAL_ERROR, "lash-gateway: the call was cancelled")
        return bridge.result

    async def _run(self, bridge: _Bridge, caller: Caller, run: Run) -> None:
        try:
            with bridge.scope:
                bridge.result = await run(caller, lambda: bridge.context)
        except Exception as exc:  # handed to whoever waits for the outcome
            bridge.error = exc
        finally:
            bridge.done = True
            self._held.pop(bridge.id, None)
            bridge.wake()

    async def _outcome(self, bridge: _Bridge) -> dict[str, Any]:
        while not bridge.done and not bridge.unsent():
            await bridge.changed.wait()
        if not bridge.done:
            with anyio.move_on_after(BATCH_WINDOW):  # the round's other questions, asked at about the same time
                while not bridge.done:
                    await bridge.changed.wait()
        if bridge.done:
            if bridge.error is not None:
                raise bridge.error
            if bridge.result is None:
                raise MCPError(types.INTERNAL_ERROR, "lash-gateway: the call was cancelled")
            return bridge.result
        return self._round(bridge)

    def _round(self, bridge: _Bridge) -> dict[str, Any]:
        """An input-required result with the questions not sent yet. Answers sent ahead are for the questions asked
        before the first round: a server would have seen them on the first request only."""
        requests: dict[str, Any] = {}
        sent: dict[str, CallerRequest] = {}
        for key, question in bridge.unsent().items():
            question.sent = True
            sent[key] = question.kind
            requests[key] = {"method": _METHODS[question.kind], "params": dict(question.params)}
        bridge.ahead = {}
        return {"resultType": "input_required", "inputRequests": requests, "requestState": self._sign(bridge, sent)}

    def _sign(self, bridge: _Bridge, sent: Mapping[str, CallerRequest]) -> str:
        """The call, its answers so far, and the questions of the round going out with this state (a retry that runs
        the call again takes answers for those only, each for a question of its kind)."""
        answers = {key: [kind, answer] for key, (kind, answer) in bridge.answers.items()}
        payload = _b64(json.dumps({"b": bridge.id, "a": answers, "q": sent}, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload, bridge.binding())}"

    def _mac(self, payload: str, binding: str) -> str:
        return _b64(hmac.new(self.key, f"{payload}.{binding}".encode(), hashlib.sha256).digest())

    def _verified(
        self, state: str, binding: str
    ) -> tuple[str, dict[str, tuple[CallerRequest | None, Any]], dict[str, CallerRequest]]:
        """The call id, the answers and the questions of the round a retry's state carries, if the state is one this
        gateway's key signed for this very request (method and params alike: a state cannot resume another call, nor
        this one with other arguments).

        Raises:
            MCPError: it is not.
        """
        payload, _, mac = state.rpartition(".")
        expected = self._mac(payload, binding).encode()
        if not payload or not hmac.compare_digest(expected, mac.encode("utf-8", "backslashreplace")):
            raise MCPError(
                types.INVALID_PARAMS,
                "lash-gateway: invalid requestState (altered, forged, or sent with another request than its own)",
            )
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        answers = {key: (kind, answer) for key, (kind, answer) in decoded["a"].items()}
        return str(decoded["b"]), answers, dict(decoded.get("q", {}))


class AnsweredEarly(Exception):
    """The request was answered already (with an input-required round, through `ANSWER_NOW`): send nothing more."""


def _caller(bridge: _Bridge, declared: Declared) -> Caller:
    return caller_of(declared, bridge.ask)


def _binding(method: str, params: Any) -> str:
    """What a request asks, less what changes between its rounds."""
    asked: Any = params
    if isinstance(params, BaseModel):
        asked = params.model_dump(mode="json", by_alias=True, exclude={"input_responses", "request_state", "meta"})
    text = json.dumps([method, asked], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _wire(response: Any) -> Mapping[str, Any]:
    if isinstance(response, BaseModel):
        return response.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dict(response) if isinstance(response, Mapping) else {}


def reporters(current: Callable[[], Round], wants_progress: bool) -> tuple[ProgressReporter | None, LogReporter]:
    """A call's progress and log messages, sent to the client's latest request (`current()`); no progress unless the
    request that began the call asked for it."""

    async def progress(progress: float, total: float | None = None, message: str | None = None) -> None:
        await current().progress(progress, total, message)

    async def relay_log(level: str, data: Any, logger: str | None = None) -> None:
        await current().log(level, data, logger)

    return (progress if wants_progress else None), relay_log
