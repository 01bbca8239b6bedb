"""Rollouts: strategies as CodeDeploy traffic shapes, the deployment hook, and reading,
following and driving the deployments CodeDeploy runs."""
