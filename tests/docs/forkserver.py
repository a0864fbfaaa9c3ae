"""Run ``backout`` commands without paying its import time for each one.

``backout --version`` takes about a second on the test machine, nearly all of it importing
the package; the docs have a hundred-odd commands. This server imports ``backout.cli``
once, then forks a child per command: the child takes the caller's arguments, working
folder, environment and its standard input, output and error (the file descriptors
themselves, passed over a Unix socket), runs the command line as the ``backout`` entry
point does (in a grandchild, so that a command that dies by a signal, e.g. a failpoint's
SIGKILL, is reported as such) and sends back the exit code, or minus the signal. ``SHIM``
is the ``backout`` program the transcripts call: it forwards its own argv, folder,
environment and descriptors, and exits with the command's code or dies by its signal.

Run as a script (``python forkserver.py SOCKET``); it prints ``ready`` once it listens.
``BACKOUT_DOCS_SUBPROCESS=1`` makes the harness call the installed ``backout`` instead.
"""

from __future__ import annotations

import array
import contextlib
import importlib
import io
import json
import os
import signal
import socket
import sys
import traceback

SHIM = """#!{python} -S
import array, json, os, signal, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["BACKOUT_DOCS_FORKSERVER"])
msg = json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}})
fds = array.array("i", [0, 1, 2])
s.sendmsg([msg.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
s.shutdown(socket.SHUT_WR)
reply = b""
while chunk := s.recv(64):
    reply += chunk
code = int(reply or b"1")
if code < 0:  # the command died by a signal: so does this process, for the shell to see
    if -code != signal.SIGKILL:
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def _receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    fds = array.array("i")
    data, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    while chunk := conn.recv(1 << 16):
        data += chunk
    return json.loads(data), list(fds)


def _serve(conn: socket.socket) -> None:
    """In the forked child: take the caller's descriptors, run its command in a child of
    its own and send back how that ended; never returns."""
    code = 1
    try:
        request, fds = _receive(conn)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
            os.close(fd)
        pid = os.fork()
        if pid == 0:
            conn.close()
            _run(request)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            conn.sendall(str(code).encode())
            conn.close()
        finally:
            os._exit(0)


def _run(request: dict[str, object]) -> None:
    """In the grandchild: become the caller's ``backout`` process; never returns."""
    code = 1
    try:
        os.chdir(str(request["cwd"]))
        env = request["env"]
        assert isinstance(env, dict)
        os.environ.clear()
        os.environ.update(env)
        argv = request["argv"]
        assert isinstance(argv, list)
        sys.argv = ["backout", *argv]
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=True)
        extra = [entry for entry in str(env.get("PYTHONPATH", "")).split(os.pathsep) if entry]
        if extra:  # a plugin the doc "installed": its folder, as the interpreter would add it
            sys.path[:0] = extra
            importlib.invalidate_caches()
        failpoints = sys.modules.get("backout.engine.failpoints")
        if failpoints is not None:  # armed from the environment at import: re-read it
            importlib.reload(failpoints)
        from backout.cli import cli

        try:
            cli.main(args=argv, prog_name="backout", obj={})
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):
                stream.flush()
        os._exit(code)


def main(path: str) -> None:
    from backout.cli import cli

    cli.load_all()  # the commands load lazily: import every one now, once for all children
    importlib.import_module("backout.telemetry.detectors")  # scipy: a trigger's detectors

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # commands wait for their children
            _serve(conn)
        conn.close()


if __name__ == "__main__":
    main(sys.argv[1])
