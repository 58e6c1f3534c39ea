"""CURVE on the internal tcp links (ZeroMQ's CurveZMQ: encryption and key authentication).

Each of the four processes has a key pair in the keys folder: `<process>.key` holds its
public key, `<process>.key_secret` both. A socket that binds a tcp endpoint is a CURVE
server with its process's pair; a socket that connects is a CURVE client with its own pair
and the public key of the process that binds the endpoint (settings.BOUND_BY). A ZAP
handler in each process admits a client only if its public key is one of the folder's
`*.key` files and, when `security.allow` is set, its address is on that list. ipc://
links need none of this: their folder is private to the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from protocol.settings import BOUND_BY, PROCESS_NAMES, Settings


class MissingKey(ValueError):
    """A key the configuration needs is missing; the message says which and where."""


@dataclass(frozen=True)
class Curve:
    """One process's CURVE keys and the public keys of the processes it connects to."""

    public: bytes
    secret: bytes
    server_keys: dict[str, bytes]  # endpoint -> public key of the process binding it
    keys_dir: Path
    allow: tuple[str, ...]

    def as_server(self, sock: zmq.Socket, endpoint: str) -> None:
        """Make `sock` a CURVE server, if `endpoint` is tcp."""
        if endpoint.startswith("tcp://"):
            sock.curve_secretkey = self.secret
            sock.curve_publickey = self.public
            sock.curve_server = True

    def as_client(self, sock: zmq.Socket, endpoint: str) -> None:
        """Make `sock` a CURVE client of the process binding `endpoint`, if it is tcp."""
        if endpoint.startswith("tcp://"):
            sock.curve_secretkey = self.secret
            sock.curve_publickey = self.public
            sock.curve_serverkey = self.server_keys[endpoint]

    def authenticator(self, context: zmq.Context) -> ThreadAuthenticator:
        """Start the ZAP handler of `context`: the folder's public keys, the allowed
        addresses. Stop it when the sockets are closed."""
        auth = ThreadAuthenticator(context)
        auth.start()
        if self.allow:
            auth.allow(*self.allow)
        auth.configure_curve(domain="*", location=str(self.keys_dir))
        return auth


def secure_bind(keys: Curve | None, sock: zmq.Socket, endpoint: str) -> None:
    """Bind `sock` to `endpoint`: as a CURVE server when there are keys and it is tcp."""
    if keys is not None:
        keys.as_server(sock, endpoint)
    sock.bind(endpoint)


def secure_connect(keys: Curve | None, sock: zmq.Socket, endpoint: str) -> None:
    """Connect `sock` to `endpoint`: as a CURVE client when there are keys and it is tcp."""
    if keys is not None:
        keys.as_client(sock, endpoint)
    sock.connect(endpoint)


def load(settings: Settings, process: str) -> Curve | None:
    """The keys of `process`, or None when security.curve is off.

    Raises:
        MissingKey: its key pair, or the public key of a process it connects to, is missing.
    """
    if not settings.security.curve:
        return None
    keys_dir = settings.keys_dir
    public, secret = _read(keys_dir / f"{process}.key_secret", secret=True)
    server_keys = {}
    for role, owner in BOUND_BY.items():
        endpoint = getattr(settings.endpoints, role)
        if endpoint.startswith("tcp://"):
            server_keys[endpoint], _ = _read(keys_dir / f"{owner}.key", secret=False)
    return Curve(public, secret or b"", server_keys, keys_dir, tuple(settings.security.allow))


def create_missing(settings: Settings, processes: list[str] | None = None) -> list[Path]:
    """Create the key pairs of `processes` (default: all four) that the folder lacks;
    the paths of the secret key files created."""
    keys_dir = settings.keys_dir
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = []
    for name in processes or PROCESS_NAMES:
        if not (keys_dir / f"{name}.key_secret").exists():
            _, secret_file = zmq.auth.create_certificates(keys_dir, name)
            Path(secret_file).chmod(0o600)
            created.append(Path(secret_file))
    return created


def check(settings: Settings) -> None:
    """Every key the supervised processes need is there (before any starts).

    Raises:
        MissingKey: naming the first missing file.
    """
    for process in settings.server.processes:
        load(settings, process)


def _read(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        what = "key pair" if secret else "public key"
        raise MissingKey(
            f"no CURVE {what} at {path} ({exc}); run `python run.py keys` where the "
            "process runs and copy the .key files (never .key_secret) to the other hosts"
        ) from None
    if secret and secret_key is None:
        raise MissingKey(f"{path} holds no secret key")
    return public, secret_key
