"""agentgym trainers (GRPO, PPO, behaviour cloning), installed as `agentgym.trainers`."""
