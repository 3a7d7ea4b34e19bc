"""agentgym: environments, rollouts and trainers for interaction scaling of LLM agents.

Example:
    >>> import agentgym
    >>> env = agentgym.make("GuessNumber-v0")        # same as gymnasium.make("agentgym/GuessNumber-v0")
    >>> obs, info = env.reset(seed=0, options={"max_turns": 8})
"""

from agentgym.env import Outcome, Task, TextEnv
from agentgym.parsing import ActionParser, ParsedAction, ToolCall
from agentgym.registration import list_envs, load_plugins, make, register
from agentgym.spaces import UnicodeText
from agentgym.tool_env import ToolEnv, ToolError
from agentgym.tools import Tool, function_schema, tool

__version__ = "0.1.0"

__all__ = [
    "ActionParser",
    "Outcome",
    "ParsedAction",
    "Task",
    "TextEnv",
    "Tool",
    "ToolCall",
    "ToolEnv",
    "ToolError",
    "UnicodeText",
    "function_schema",
    "list_envs",
    "load_plugins",
    "make",
    "register",
    "tool",
]

# Register built-in and third-party environments (entry-point group "agentgym.envs"),
# so that gymnasium.make("agentgym/...") works right after `import agentgym`.
load_plugins()
