"""``sld verify`` and ``sld attest`` answered by the running daemon, import-light on purpose.

Only builtin modules: on a slow interpreter argparse, json and socket.py each cost more than the
daemon's whole verification, and this path exists so that a monitoring check asking every few
seconds pays for nothing but the process start. Another option, or no daemon answering, returns None
and the full command runs in this process (sld.commands.verify, which says so). A daemon that answers
but cannot verify (degraded) is reported as it is: its state and reason, never replaced by a verdict
made here with other settings.
"""

from __future__ import annotations

import _socket
import sys

from sld.paths import DEFAULT_SOCKET


def _options(argv: list[str]) -> tuple[str, str] | None:
    """(render, socket path) for ``verify [--json] [--socket PATH]``; None for anything else."""
    if not argv or argv[0] != "verify":
        return None
    render, path, rest = "text", DEFAULT_SOCKET, argv[1:]
    while rest:
        arg = rest.pop(0)
        if arg == "--json":
            render = "json"
        elif arg == "--socket" and rest:
            path = rest.pop(0)
        elif arg.startswith("--socket="):
            path = arg.partition("=")[2]
        else:
            return None
    return render, path


def ask(path: str, request: bytes, timeout: float = 60.0) -> bytes:
    """Send one request line, read the answer to EOF (the daemon answers, then sees our EOF and closes)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        sock.shutdown(_socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def fast_verify(argv: list[str]) -> int | None:
    """The exit code after printing the daemon's verdict, or None when the full command must run."""
    options = _options(argv)
    if options is None:
        return None
    render, path = options
    colour = "true" if render == "text" and sys.stdout.isatty() else "false"
    try:
        answer = ask(path, b'{"cmd": "verify", "render": "%s", "colour": %s}\n' % (render.encode(), colour.encode()))
    except OSError:
        return None
    code, _, body = answer.partition(b"\n")
    if not code.isdigit():
        return refusal(path, answer, render)
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    return int(code)


def _attest_options(argv: list[str]) -> tuple[str, str | None, str] | None:
    """(nonce hex, output file or None, socket path) for ``attest --nonce HEX [-o FILE] [--socket PATH]``."""
    if not argv or argv[0] != "attest":
        return None
    found: dict[str, str] = {}
    names = {"--nonce": "nonce", "-o": "output", "--output": "output", "--socket": "socket"}
    rest = argv[1:]
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if name not in names or (not eq and not rest):
            return None
        found[names[name]] = value if eq else rest.pop(0)
    nonce = found.get("nonce", "")
    if not nonce or not all(c in "0123456789abcdefABCDEF" for c in nonce):
        return None
    return nonce, found.get("output"), found.get("socket", DEFAULT_SOCKET)


def fast_attest(argv: list[str]) -> int | None:
    """``sld attest`` answered by the daemon, written as it sent it; None when the full command must run
    (other options, no daemon, or a refusal, which the full command then explains)."""
    options = _attest_options(argv)
    if options is None:
        return None
    nonce, output, path = options
    try:
        answer = ask(path, b'{"cmd": "attest", "nonce": "%s"}\n' % nonce.encode())
    except OSError:
        return None
    if not answer.startswith(b'{"schema": 1, "kind": "evidence"'):
        return None
    if output is None:
        sys.stdout.buffer.write(answer)
        return 0
    import os

    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError:
        return None  # the full command says why, as a usage error naming -o
    with open(fd, "wb") as f:
        f.write(answer)
    return 0


def refusal(path: str, answer: bytes, render: str) -> int:
    """The daemon answered without a verdict (a JSON error object): say why, exit non-zero, verify nothing.

    With a ``state`` the daemon could not verify (degraded, stuck): its exit code is the one ``sld status``
    gives (3 no source readable, 4 TPM unavailable or no answer within [verify] timeout, 5 the extend lock).
    Without one it refused the request itself (peer credentials, a bad request): a usage error, 2, unless
    the answer names another code.
    """
    import json

    try:
        reply = json.loads(answer)
        error, state = str(reply["error"]), reply.get("state")
        code = int(reply.get("exit_code", 2 if state is None else 4))
    except (ValueError, TypeError, KeyError, AttributeError):
        error, state, code = f"not an sld daemon's answer: {answer[:80]!r}", None, 2
    if render == "json":
        from sld.report import dump_json

        print(dump_json("error", {"state": state, "error": error, "exit_code": code, "socket": path}))
    what = f"is {state} and did not verify" if state else "refused the request"
    print(f"sld: the daemon on {path} {what}: {error} (sld status says more; sld verify --local verifies "
          "in this process)", file=sys.stderr)
    return code
