"""What the image runs: the entrypoint's roles, the sync agent and code server control, the run launcher,
the Postgres storages and the resources pipelines use. It needs only the shared modules in ``dagops``
(never ``dagops.operator``; the image is built without it)."""
