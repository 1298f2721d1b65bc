"""``python -m MODULE ARGS`` as a fresh process that skips the interpreter's import time.

Every CLI test used to start a new interpreter, and on 2 cores importing torch, Lightning (which pulls
in torchmetrics, torchvision, scipy and transformers), timm and pandas takes ~7 s, most of a smoke
run's 10-15 s. Here one server process per test worker imports all of that once and then forks a
child per command: the child is a separate process (its own pid, globals, signal handlers, exit code,
stdin from /dev/null, stdout and stderr captured), starting from an interpreter that already holds the
modules. What a fork cannot reproduce, the caller must run in a real subprocess: a different
``PYTHONPATH`` (``sys.path`` is fixed at start-up) and anything that signals the process while it runs.

Protocol: one JSON request per line on the server's stdin, and two JSON lines back per request:
``{"pid": ...}`` once the child runs, then ``{"returncode": ...}`` (negative: killed by that signal).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["WarmInterpreter"]

SERVER = r'''
import importlib, json, os, pkgutil, sys

for name in ("torch", "torchvision", "lightning.pytorch", "timm", "hydra", "pandas", "matplotlib.pyplot"):
    importlib.import_module(name)
import zoolab
for info in pkgutil.walk_packages(zoolab.__path__, "zoolab."):
    if not info.name.endswith("__main__"):
        try:
            importlib.import_module(info.name)
        except Exception:  # an optional dependency missing: the child imports (and fails) as usual
            pass

def child(request):
    import atexit, runpy, signal, threading, traceback
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, (path, flags) in enumerate(((os.devnull, os.O_RDONLY),
                                            (request["stdout"], os.O_WRONLY), (request["stderr"], os.O_WRONLY))):
            os.dup2(os.open(path, flags), fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        sys.argv = [request["module"], *request["args"]]
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        threading._shutdown()  # what interpreter exit does: join non-daemon threads, then atexit
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)

reply = sys.stdout
for line in sys.stdin:
    request = json.loads(line)
    reply.flush()
    pid = os.fork()
    if pid == 0:
        child(request)
    reply.write(json.dumps({"pid": pid}) + "\n")
    reply.flush()
    _, status = os.waitpid(pid, 0)
    returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    reply.write(json.dumps({"returncode": returncode}) + "\n")
    reply.flush()
'''


class WarmInterpreter:
    """A server interpreter with zoolab's dependencies imported; ``run`` forks a child per command."""

    def __init__(self, cwd: Path) -> None:
        self._server: subprocess.Popen | None = None
        self._cwd = cwd

    def _start(self) -> subprocess.Popen:
        if self._server is None or self._server.poll() is not None:
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
            self._server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=self._cwd, env=env, text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return self._server

    def _reply(self, server: subprocess.Popen, timeout: float | None) -> dict | None:
        if timeout is not None and not select.select([server.stdout], [], [], max(timeout, 0))[0]:
            return None
        line = server.stdout.readline()
        if not line:
            raise RuntimeError(f"the warm interpreter exited (code {server.poll()}); see the test's stderr")
        return json.loads(line)

    def run(self, module: str, args: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
        server = self._start()
        with tempfile.TemporaryDirectory(prefix="zoolab-cli-") as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            out.touch(), err.touch()
            request = {"module": module, "args": [str(a) for a in args], "cwd": str(cwd), "env": env,
                       "stdout": str(out), "stderr": str(err)}
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            pid = self._reply(server, None)["pid"]
            done = self._reply(server, timeout)
            if done is None:
                os.kill(pid, signal.SIGKILL)
                self._reply(server, None)
                raise subprocess.TimeoutExpired([module, *args], timeout, out.read_text(), err.read_text())
            return subprocess.CompletedProcess([sys.executable, "-m", module, *args], done["returncode"],
                                               out.read_text(errors="replace"), err.read_text(errors="replace"))

    def close(self) -> None:
        if self._server is not None and self._server.poll() is None:
            self._server.stdin.close()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
