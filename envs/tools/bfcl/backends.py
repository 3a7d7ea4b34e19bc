"""Running calls against BFCL's executable backends (file system, trading, travel, ...).

BFCL's own executor (`execute_multi_turn_func_call`) keeps the backend instances in
its module's globals, keyed by model name and test id, and `eval`s call strings: two
episodes of the same task would share state, and nothing is ever freed. `Backends`
does the same thing per episode instead: fresh instances loaded from the entry's
initial config, the same method lookup (the last involved class that has a public
method of that name owns it), and the same formatting of results and errors, so the
strings compared by BFCL's response checker are identical.

Two things BFCL's executor does not do, so that no call of the agent's can stall or
skew a run: arguments that would make a call run away (a power with a result of millions
of digits, a square root or logarithm at a precision of millions of digits: single C calls
no signal interrupts) are refused before the call (`runaway`), and a result too long to
print is an error, both reported as BFCL reports a failed call ("Error during execution:
..."); and no call leaves process-wide state changed (MathAPI sets `decimal`'s context
precision and `mpmath.mp.dps` for the whole process: later episodes would compute at
another precision), see `kept_process_state`. The ground truth's calls are never refused.
"""

from __future__ import annotations

import ast
import copy
import decimal
import importlib
import inspect
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agentgym.envs.tools.bfcl.data import INSTALL_COMMAND, Entry

__all__ = ["MAX_PRECISION", "Backends", "backend_class", "format_result", "kept_process_state", "parse_call", "runaway"]

#: The most digits of precision a math tool may be asked for (BFCL's tasks ask for at most 10).
MAX_PRECISION = 1000


def max_digits() -> int:
    """The most digits a result may have: Python's int-string limit (4,300 by default)."""
    return sys.get_int_max_str_digits() or 4300


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def runaway(name: str, arguments: dict[str, Any]) -> str | None:
    """Why a call would run away (or None): a result with more digits than `max_digits`,
    or a precision above `MAX_PRECISION`. Checked on the bound arguments of MathAPI's
    methods; other calls are cheap."""
    if name == "power":
        base, exponent = arguments.get("base"), arguments.get("exponent")
        if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
            digits = exponent * math.log10(abs(base))
            if digits > max_digits():
                return (
                    f"the result would have about {digits:.3g} digits, more than the {max_digits()} a result may have"
                )
    if name in ("square_root", "logarithm"):
        precision = arguments.get("precision")
        if _is_int(precision) and precision > MAX_PRECISION:
            return f"a precision of {precision} digits is more than the {MAX_PRECISION} allowed"
    return None


@contextmanager
def kept_process_state() -> Iterator[None]:
    """Run a call with `decimal`'s context and mpmath's precision restored after it."""
    mpmath = sys.modules.get("mpmath")
    dps = mpmath.mp.dps if mpmath is not None else None
    try:
        with decimal.localcontext():
            yield
    finally:
        mpmath = sys.modules.get("mpmath")  # a call may be the first to import it
        if mpmath is not None:
            mpmath.mp.dps = dps if dps is not None else 15


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
        method = getattr(instance, name)
        try:
            bound = inspect.signature(method).bind(*positional, **arguments).arguments
        except TypeError:
            bound = {}  # the call itself reports the bad arguments
        refused = runaway(name, bound)
        if refused is not None:
            return f"Error during execution: {refused}"
        try:
            with kept_process_state():  # formatted inside too: an mpf prints at the call's precision
                return format_result(method(*positional, **arguments))
        except Exception as exc:  # the backends signal bad input by raising; BFCL shows the message
            return f"Error during execution: {exc}"

    def call_string(self, text: str) -> str:
        """Run a ground-truth call string."""
        name, args, kwargs = parse_call(text)
        return self.call(name, kwargs, args)
