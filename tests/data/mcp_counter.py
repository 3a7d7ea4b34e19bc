"""A small stateful MCP server for the MCP env tests (the SDK's MCPServer, FastMCP's
successor in mcp 2): a counter, a tool that fails, one that hangs, one that kills the server."""

import os
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("counter")
count = 0


@server.tool()
def increment(by: int = 1) -> str:
    """Add `by` to the counter and return its new value."""
    global count
    count += by
    return str(count)


@server.tool()
def value() -> str:
    """The counter's value."""
    return str(count)


@server.tool()
def divide(by: int) -> str:
    """Divide the counter by `by` (fails for 0)."""
    return str(count / by)


@server.tool()
def wait(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return "awake"


@server.tool()
def crash() -> str:
    """Kill the server."""
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
