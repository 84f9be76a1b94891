"""Run ECS task definitions on a local Docker engine the way ECS (Fargate, ``awsvpc``) runs them.

One place holds ECS's semantics, so a reader can check them against the AWS documentation:

- **One network namespace per task** (``awsvpc``): a pause container owns the task's address; every
  container of the task joins it (``--network container:<pause>``), so they reach each other on
  ``localhost`` and share one port space. The task's ``portMappings`` are published on 127.0.0.1 from
  the pause container, the way the task's ENI exposes them.
- **Cloud Map names** are the pause container's aliases on the shared Docker network, so
  ``<service>.<namespace>`` resolves to the task as it would inside the VPC.
- ``image`` (through one explicit override: an ECR image cannot be pulled here), ``entryPoint``,
  ``command``, ``environment``, ``workingDirectory``, ``user``, ``stopTimeout`` and
  ``linuxParameters.initProcessEnabled`` (``--init``) map one to one onto ``docker run``.
- ``secrets``: each ``valueFrom`` is resolved as ECS's agent does, from Secrets Manager
  (``arn:aws:secretsmanager:...:secret:<name>[:<json-key>:<version-stage>:<version-id>]``) or
  SSM Parameter Store (a parameter ARN or name), and handed to the container as an environment variable.
  Values travel through ``docker run -e NAME`` (read from the client's environment), never on argv.
- ``healthCheck`` becomes Docker's health check with the same command, interval, timeout, retries and
  start period (ECS's defaults: 30 s, 5 s, 3, 0).
- ``dependsOn``: a container starts only once each dependency reached its condition: ``START`` (running),
  ``COMPLETE`` (exited), ``SUCCESS`` (exited 0), ``HEALTHY`` (its health check passes). As in ECS,
  ``COMPLETE``/``SUCCESS`` may not name an essential container and ``HEALTHY`` needs a health check.
- ``essential``: when an essential container stops, or its health check reports it unhealthy, the task
  stops (``LocalTask.check`` reports it; a service would then replace the task).
- ``overrides`` (RunTask's ``containerOverrides``): a container's ``command`` replaces the definition's,
  its ``environment`` entries are added to (and win over) the definition's; ``LocalTask.wait_stopped``
  waits for a one-off task to stop and reports its essential container's exit code.
- What the platform injects: ``AWS_REGION``/``AWS_DEFAULT_REGION`` (the task definition's region) and
  ``AWS_EXECUTION_ENV``; the task role's credentials and any endpoint come from ``aws_env`` (in tests: an
  emulator's endpoint and its fake keys, standing in for the task-role credential endpoint).

Not reproduced: task-level cpu/memory limits, the awslogs driver (``docker logs`` instead), the task
metadata endpoint, and the execution role's permission checks.

Uses the ``docker`` CLI only (no SDK), so it runs wherever ``docker run`` does.

The parts: ``definition`` (task definition -> validated container specs, start order), ``secrets``
(``valueFrom`` -> value), ``task`` (the pause container, ``docker run`` per container, dependsOn waits,
essential checks), ``service`` (a service's task definition and Cloud Map names, read back from AWS).
"""
