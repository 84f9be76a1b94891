"""The local S3 endpoint: moto's server on loopback, and the bucket the stack uses."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from typing import Any

from dagops.errors import DagopsError

# moto accepts any credentials; these keep boto3 from looking for real ones on a developer's machine.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "dagops-local",
    "AWS_SECRET_ACCESS_KEY": "dagops-local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# moto's server with its per-request access log turned off: the sync agents poll every few seconds,
# and a line per poll would drown the console of `invoke dev`. Errors still reach the log.
_MOTO_QUIET = (
    "import logging, sys; logging.getLogger('werkzeug').setLevel(logging.WARNING); "
    "from moto.server import main; main(sys.argv[1:])"
)


def moto_argv(host: str, port: int) -> list[str]:
    """The command of a moto server child process."""
    return [sys.executable, "-c", _MOTO_QUIET, "-H", host, "-p", str(port)]


def is_ready(endpoint: str) -> bool:
    """True once the endpoint answers HTTP at all (an S3 server says 403 or 200 to a bare GET)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/", timeout=2):  # noqa: S310 (an http URL from settings)
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(endpoint: str, timeout: float = 30.0, alive: Any = None) -> None:
    """Wait until the S3 endpoint answers; ``alive()`` False (the process died) stops early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_ready(endpoint):
            return
        if alive is not None and not alive():
            raise DagopsError(f"The S3 server ({endpoint}) exited during start-up.")
        time.sleep(0.2)
    raise DagopsError(f"The S3 server did not answer at {endpoint} within {timeout:.0f} s.")


def client(endpoint: str) -> Any:
    """An S3 client for the local endpoint, with the local (fake) credentials."""
    # botocore's own session, not boto3's: boto3 also imports s3transfer (about 0.1 s of CPU, a tenth
    # of `invoke dags.deploy` with nothing changed) for transfer helpers nothing here uses.
    # Imported here, not at the top: the command line imports this module and must stay fast.
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def ensure_bucket(s3: Any, bucket: str) -> None:
    """Create ``bucket`` unless it exists; any S3 failure (credentials refused, endpoint unreachable,
    not an S3 server) is one DagopsError sentence, never a botocore traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    endpoint = getattr(getattr(s3, "meta", None), "endpoint_url", None) or "the S3 endpoint"
    try:
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        error = (exc.response or {}).get("Error", {})
        code = str(error.get("Code") or "an error")
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken"}:
            raise DagopsError(
                f"The S3 endpoint {endpoint} refused the local stack's credentials ({code}) while preparing "
                f"bucket {bucket!r}."
            ) from None
        raise DagopsError(
            f"The S3 endpoint {endpoint} answered {code} while preparing bucket {bucket!r}."
        ) from None
    except BotoCoreError as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DagopsError(
            f"The S3 endpoint {endpoint} could not be used for bucket {bucket!r}: {detail}."
        ) from None
