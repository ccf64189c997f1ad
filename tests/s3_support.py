"""A real S3 API server for the tests: moto in server mode, on 127.0.0.1, started by the tests.

One server per test process, started on first use (`server`) and stopped at
exit.  It checks SigV4 signatures: moto authenticates every request after
its first ``INITIAL_NO_AUTH_ACTION_COUNT`` ones, which we spend creating an
IAM user with an allow-all policy and its access key (`S3Server.access_key_id`
/ `secret_access_key`); a request our client signed wrongly then fails with
``SignatureDoesNotMatch`` instead of being waved through.

The server and the setup client run with every ambient ``AWS_*`` variable
removed (a machine may set ``AWS_CA_BUNDLE``, a profile or real keys);
`clean_aws_environment` does the same for a test's own process.

moto's signature check has one known bug: it re-encodes query values
differently from AWS, so a request with ``/``, ``+`` or non-ASCII in a query
value (``list-type=2&prefix=cache%2F``) fails it even when signed by
botocore's own client.  `server(check_signatures=False)` is a second server
that does not authenticate, for the listings under such prefixes.

When moto is missing the tests skip, except under ``CI=true`` (CI installs
``moto[server]``), where that is an error.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from twisted.trial.unittest import SkipTest

REGION = "us-east-1"
#: requests moto lets through unauthenticated: create user, put its policy, create its access key
_SETUP_ACTIONS = 3
_state: dict[str, Any] = {}
_buckets = itertools.count(1)


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    port: int
    access_key_id: str
    secret_access_key: str

    def new_bucket(self, stem: str = "test") -> str:
        """A fresh, empty bucket (each test gets its own: no test sees another's keys)."""
        name = f"{stem}-{os.getpid()}-{next(_buckets)}"
        self.botocore_client().create_bucket(Bucket=name)
        return name

    def botocore_client(self, service: str = "s3") -> Any:
        """A plain (blocking) botocore client on the server: for test setup and checks, never for the code under test."""
        import botocore.session
        from botocore.config import Config

        with clean_aws_environment():
            session = botocore.session.Session()
        return session.create_client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )


class clean_aws_environment:
    """A ``with`` block (or explicit enter/exit) in which no ``AWS_*`` variable of the machine is set."""

    def __enter__(self) -> clean_aws_environment:
        self.saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        for k in self.saved:
            del os.environ[k]
        # never the real ~/.aws either
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        os.environ["AWS_CONFIG_FILE"] = os.devnull
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        return self

    def __exit__(self, *exc: object) -> None:
        for k in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[k]
        os.environ.update(self.saved)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"an S3 server (moto[server]) is required under CI: {reason}")
    raise SkipTest(f"no S3 server for the tests: {reason}")


def stop() -> None:
    """Stop the servers this process started."""
    _state.pop("server-True", None)
    _state.pop("server-False", None)
    for process in _state.pop("processes", []):
        if process.poll() is not None:
            continue
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(check_signatures: bool) -> S3Server:
    try:
        import moto.server  # noqa: F401
    except ImportError as e:
        _unavailable(f"moto is not installed ({e}): pip install 'moto[server]'")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    if check_signatures:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(_SETUP_ACTIONS)
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if "processes" not in _state:
        atexit.register(stop)
    _state.setdefault("processes", []).append(process)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            _unavailable(f"moto.server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline:
                stop()
                _unavailable("moto.server did not answer within 60 s")
            time.sleep(0.1)
    # the unauthenticated setup requests (any keys: moto does not check them yet)
    setup = S3Server(endpoint, port, "setup", "setup").botocore_client("iam")
    setup.create_user(UserName="harbor")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    setup.put_user_policy(UserName="harbor", PolicyName="all", PolicyDocument=json.dumps(policy))
    key = setup.create_access_key(UserName="harbor")["AccessKey"]
    return S3Server(endpoint, port, key["AccessKeyId"], key["SecretAccessKey"])


def server(check_signatures: bool = True) -> S3Server:
    """The process's S3 server (started on first use); by default one that checks every signature."""
    name = f"server-{check_signatures}"
    if name not in _state:
        _state[name] = _start(check_signatures)
    server: S3Server = _state[name]
    return server
