"""lash_core: the lash plugin runtime in Python.

A `LashCore` holds a `PluginStack` of `PluginFactory`s; each session it builds gets one
`SessionPlugin` per factory, which registers tools, hooks and actions into a `PluginRegistrar`.
No MCP, no network: those live in `lash_gateway`.
"""

from ._budget import DEFAULT_MAX_TEXT_CHARS as DEFAULT_MAX_TEXT_CHARS
from ._budget import ToolOutputBudget as ToolOutputBudget
from ._budget import ToolOutputBudgetPluginFactory as ToolOutputBudgetPluginFactory
from ._budget import apply_budget as apply_budget
from ._caller import ASKED_AS as ASKED_AS
from ._caller import NO_CALLER as NO_CALLER
from ._caller import Caller as Caller
from ._caller import CallerRequest as CallerRequest
from ._caller import CallerUnsupported as CallerUnsupported
from ._context import PluginSessionContext as PluginSessionContext
from ._context import SessionKind as SessionKind
from ._core import LashCore as LashCore
from ._core import LashCoreBuilder as LashCoreBuilder
from ._errors import ActionArgumentsError as ActionArgumentsError
from ._errors import DuplicatePluginError as DuplicatePluginError
from ._errors import ExclusiveRegistrationError as ExclusiveRegistrationError
from ._errors import PluginError as PluginError
from ._errors import PluginUsageError as PluginUsageError
from ._errors import ToolConflictError as ToolConflictError
from ._errors import UnknownActionError as UnknownActionError
from ._errors import UnknownPluginError as UnknownPluginError
from ._names import unique_name as unique_name
from ._plugin import ExtensionContribution as ExtensionContribution
from ._plugin import PluginFactory as PluginFactory
from ._plugin import SessionPlugin as SessionPlugin
from ._registrar import ActionSpec as ActionSpec
from ._registrar import PluginRegistrar as PluginRegistrar
from ._registrar import TurnContext as TurnContext
from ._session import Session as Session
from ._session import SessionSnapshot as SessionSnapshot
from ._stack import PluginStack as PluginStack
from ._tools import AudioPart as AudioPart
from ._tools import Cancellation as Cancellation
from ._tools import ContentPart as ContentPart
from ._tools import FailureClass as FailureClass
from ._tools import ImagePart as ImagePart
from ._tools import LogReporter as LogReporter
from ._tools import ProgressReporter as ProgressReporter
from ._tools import ResourceLinkPart as ResourceLinkPart
from ._tools import ResourcePart as ResourcePart
from ._tools import TextPart as TextPart
from ._tools import ToolCall as ToolCall
from ._tools import ToolCallContext as ToolCallContext
from ._tools import ToolDefinition as ToolDefinition
from ._tools import ToolFailure as ToolFailure
from ._tools import ToolProvider as ToolProvider
from ._tools import ToolResult as ToolResult
from ._tools import ignore_log as ignore_log
from ._tools import ignore_progress as ignore_progress

__all__ = [
    "ASKED_AS",
    "DEFAULT_MAX_TEXT_CHARS",
    "NO_CALLER",
    "ActionArgumentsError",
    "ActionSpec",
    "AudioPart",
    "Caller",
    "CallerRequest",
    "CallerUnsupported",
    "Cancellation",
    "ContentPart",
    "DuplicatePluginError",
    "ExclusiveRegistrationError",
    "ExtensionContribution",
    "FailureClass",
    "ImagePart",
    "LashCore",
    "LashCoreBuilder",
    "LogReporter",
    "PluginError",
    "PluginFactory",
    "PluginRegistrar",
    "PluginSessionContext",
    "PluginStack",
    "PluginUsageError",
    "ProgressReporter",
    "ResourceLinkPart",
    "ResourcePart",
    "Session",
    "SessionKind",
    "SessionPlugin",
    "SessionSnapshot",
    "TextPart",
    "ToolCall",
    "ToolCallContext",
    "ToolConflictError",
    "ToolDefinition",
    "ToolFailure",
    "ToolOutputBudget",
    "ToolOutputBudgetPluginFactory",
    "ToolProvider",
    "ToolResult",
    "TurnContext",
    "UnknownActionError",
    "UnknownPluginError",
    "apply_budget",
    "ignore_log",
    "ignore_progress",
    "unique_name",
]
