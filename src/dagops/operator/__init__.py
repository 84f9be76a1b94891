"""The operator's tools, run on a laptop or in CI: the invoke tasks, the local development stack, the
repository manager, deploy (AWS), cost, infra, and running the cloud's task definitions as local
containers."""
