"""The error a user's input causes (a config key, a model name, a file, a folder): the
`agentgym` command prints it as one line that names the problem and the fix, and exits
with status 2; `--debug` (or `AGENTGYM_DEBUG=1`) shows the traceback instead."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Raised for input the user can fix; the message says what is wrong and what to do."""
