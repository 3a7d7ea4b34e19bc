"""Bridges to other tools: OpenEnv (`openenv.py`: serve agentgym envs, use OpenEnv envs)."""
