"""MCP: tool environments whose tools are an MCP server's (`env.py`, through the official
`mcp` SDK over stdio), and a built-in one on mcp-server-git with per-episode repositories
(`git.py`). Needs `pip install 'agentgym[mcp]'`."""

from agentgym.registration import register as _register


def register() -> None:
    _register("MCP-v0", "agentgym.envs.mcp.env:MCPEnv")
    _register("MCPGit-v0", "agentgym.envs.mcp.git:GitMCPEnv")
