"""Bridges to other tools: OpenEnv (`openenv.py`: serve agentgym envs, use OpenEnv envs) and
TRL (`trl.py`: a `rollout_func` for `GRPOTrainer` that plays agentgym envs multi-turn)."""
