"""The S3 code sync agent: pulls ``dags/<location>/`` into a local release tree, swaps it in atomically,
import-checks it first, and supervises the location's gRPC code server.

Modules: ``layout`` (the on-disk release layout), ``status`` (the status file), ``syncer`` (one sync
step against S3), ``loadcheck`` (the import check, run as a subprocess), ``codeserver`` (the
``dagster api grpc`` child), ``standby`` (the import check's processes), ``agent`` (the supervising loop),
``cli`` (``python -m dagops.runtime.sync`` and its settings). The webserver reload goes through
dagops.webserver.
The agent process never imports dagster: the import check and the code server are subprocesses.
"""
