"""Running calls against BFCL's executable backends (file system, trading, travel, ...).

BFCL's own executor (`execute_multi_turn_func_call`) keeps the backend instances in
its module's globals, keyed by model name and test id, and `eval`s call strings: two
episodes of the same task would share state, and nothing is ever freed. `Backends`
does the same thing per episode instead: fresh instances loaded from the entry's
initial config, the same method lookup (the last involved class that has a public
method of that name owns it), and the same formatting of results and errors, so the
strings compared by BFCL's response checker are identical.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import json
from typing import Any

from agentgym.envs.tools.bfcl.data import INSTALL_COMMAND, Entry

__all__ = ["Backends", "backend_class", "format_result", "parse_call"]


def backend_class(class_name: str) -> type:
    """The backend class BFCL maps this name to (imported on first use)."""
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    try:
        module = importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name])
    except ImportError as exc:  # MathAPI needs mpmath, which --no-deps does not bring
        raise ModuleNotFoundError(f"the BFCL backend {class_name} needs {exc.name!r}: run `{INSTALL_COMMAND}`") from exc
    return getattr(module, class_name)


def format_result(result: Any) -> str:
    """A call's result as BFCL's executor turns it into the string the model sees."""
    if type(result) is str:
        return result
    if type(result) is dict:
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


def parse_call(text: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """Split a ground-truth call string like "mv(source='a', destination='b')" into
    (name, positional arguments, keyword arguments); arguments are Python literals."""
    node = ast.parse(text.strip(), mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a plain function call: {text!r}")
    args = tuple(ast.literal_eval(a) for a in node.args)
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
    return node.func.id, args, kwargs


class Backends:
    """The backend instances of one episode, fresh from an entry's initial config.

    Args:
        entry: the BFCL entry (its involved classes and initial config).

    Example:
        >>> b = Backends(load_category("base")[0])
        >>> b.call("ls", {})
        '{"current_directory_content": ["document", "archive"]}'
        >>> b.call_string("cd(folder='nowhere')")
        '{"error": "cd: \'nowhere\': No such file or directory"}'
    """

    def __init__(self, entry: Entry):
        from bfcl_eval.constants.executable_backend_config import STATELESS_CLASSES

        self.instances: dict[str, Any] = {}
        self.owner: dict[str, Any] = {}
        for class_name in entry.involved_classes:
            instance = backend_class(class_name)()
            if class_name not in STATELESS_CLASSES:
                config = copy.deepcopy(entry.initial_config.get(class_name, {}))
                instance._load_scenario(config, long_context=entry.long_context)
            self.instances[class_name] = instance
            for name, _ in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not name.startswith("_"):
                    self.owner[name] = instance

    def call(self, name: str, arguments: dict[str, Any], positional: tuple[Any, ...] = ()) -> str:
        """Run one call; a failure is reported as BFCL reports it ("Error during execution: ...")."""
        instance = self.owner.get(name)
        if instance is None:
            return f"Error during execution: name '{name}' is not defined"
        try:
            result = getattr(instance, name)(*positional, **arguments)
        except Exception as exc:  # the backends signal bad input by raising; BFCL shows the message
            return f"Error during execution: {exc}"
        return format_result(result)

    def call_string(self, text: str) -> str:
        """Run a ground-truth call string."""
        name, args, kwargs = parse_call(text)
        return self.call(name, kwargs, args)
