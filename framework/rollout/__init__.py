"""Progressive rollouts: strategies, the rollout record, the driver and health sources."""
