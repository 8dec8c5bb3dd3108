"""adapters: a lash session's tools in the shapes LLM SDKs expect, and the model's calls run back through it.

One opt-in module per SDK, imported by name; neither needs its SDK installed (plain dicts in and out, the SDK's
typed objects accepted as input), and neither imports the other's:

- `adapters.anthropic`: `tool_definitions(session)`, `await run_tool_uses(session, message_or_content)`.
- `adapters.openai`: `chat_tools(session)`, `await run_tool_calls(session, message_or_tool_calls)` for Chat
  Completions; `response_tools(session)`, `await run_function_calls(session, response_or_output)` for Responses.

Tool names that break the providers' rule (`^[a-zA-Z0-9_-]{1,64}$`) get a reversible, deterministic model-side
name; each module's docstring lists what else it adjusts. Depends only on `lash_core`.
"""

__all__: list[str] = []
