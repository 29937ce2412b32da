"""Run ``python -m seq2seq_lab.<module>`` (or ``python -c``) many times in a test session, paying the imports once.

Such a run spends most of its time importing torch, Lightning and Hydra: ~8 s of an ~11 s error
case on a 2-core CPU. A server process imports the package's entry points once; each run is a
process forked from it that takes its own argv, working directory, environment and output files,
then runs the module as ``__main__`` as ``python -m`` does (``runpy``), or the code as ``python -c``
does. Exit status, output, signals and files are those of a process of its own. Only what the
interpreter reads as it starts is the server's (``PYTHONUNBUFFERED``, ``PYTHONHASHSEED``, ``-X``
options; output is line-buffered), and what the imports did is done: a test of what a fresh
interpreter imports (e.g. that one never imports torch) needs a real one.

    server = EntryPoints()
    done = server.run(["-m", "seq2seq_lab.train", "experiment=toy_reverse"], cwd, env)   # a CompletedProcess
    proc = server.start(["-m", "seq2seq_lab.train", ...], cwd, env)   # poll(), send_signal(), wait(), as Popen's
    server.close()

The server, ``python tests/entry_points.py``, reads one JSON request per line on stdin and answers
one per line on stdout: ``{"start": {...}}`` -> ``{"pid": N}``; ``{"poll": N}`` -> ``{"returncode": rc or null}``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRELOADED = ("seq2seq_lab.train", "seq2seq_lab.eval", "seq2seq_lab.predict", "seq2seq_lab.export",
             "seq2seq_lab.synth", "seq2seq_lab.bench")


def cli_env(data_dir: Path | str, **extra: str) -> dict[str, str]:
    """The environment of a command-line run in the tests: this one, data under ``data_dir``, one thread, ``extra``."""
    return {**os.environ, "S2S_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


class Forked:
    """A run the server started: the part of ``subprocess.Popen``'s interface the tests use."""

    def __init__(self, server: EntryPoints, pid: int, args: list[str], out: Path, err: Path):
        self.server, self.pid, self.args, self.out, self.err = server, pid, args, out, err
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server._ask({"poll": self.pid})["returncode"]
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def output(self) -> tuple[str, str]:
        """What it wrote to stdout and to stderr."""
        return self.out.read_text(errors="replace"), self.err.read_text(errors="replace")


class EntryPoints:
    """Runs of ``python <args>`` forked from one process that has imported the package's entry points."""

    def __init__(self):
        self.logs = Path(tempfile.mkdtemp(prefix="entry_points_"))
        self.count = 0
        with open(self.logs / "server.err", "w") as err:
            self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, text=True, bufsize=1, env={**os.environ, "OMP_NUM_THREADS": "1"})
        self._ask({"poll": 0})  # answered once the imports are done

    def _ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the entry-point server ended (exit {self.proc.wait()}): "
                               f"{(self.logs / 'server.err').read_text()[-3000:]}")
        return json.loads(line)

    def start(self, args: list[str], cwd: Path | str, env: dict[str, str]) -> Forked:
        """Start ``python *args`` (``-m module ...`` or ``-c code ...``) in ``cwd`` with exactly ``env``."""
        if len(args) < 2 or args[0] not in ("-m", "-c"):
            raise ValueError(f"args must start with -m MODULE or -c CODE, not {args[:2]}")
        self.count += 1
        out, err = self.logs / f"{self.count}.out", self.logs / f"{self.count}.err"
        args = [str(a) for a in args]
        pid = self._ask({"start": {"args": args, "cwd": str(cwd), "env": env, "stdout": str(out),
                                   "stderr": str(err)}})["pid"]
        return Forked(self, pid, [sys.executable, *args], out, err)

    def run(self, args: list[str], cwd: Path | str, env: dict[str, str],
            timeout: float = 300) -> subprocess.CompletedProcess:
        """As ``subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)``."""
        proc = self.start(args, cwd, env)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, *proc.output())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# -- the server ---------------------------------------------------------------------------------------


def _pythonpath(env: dict[str, str]) -> list[str]:
    return [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]


# the server's sys.path without its script's directory and its own PYTHONPATH
_INSTALLATION_PATH = [entry for entry in sys.path[1:] if entry not in _pythonpath(dict(os.environ))]


def _become(request: dict, answers: int) -> None:
    """In the forked child: run ``python *args`` as the request says, and exit with its status."""
    import atexit
    import runpy
    import traceback

    os.close(answers)  # the client is to see the server's end of the pipe alone
    os.setpgid(0, 0)  # a group of its own, with its loader workers, for the server to stop if it must
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    flag, target, *rest = request["args"]
    # as the interpreter starts: the working directory ("" for -c), then PYTHONPATH, then the installation
    sys.path[:] = [request["cwd"] if flag == "-m" else "", *_pythonpath(request["env"]), *_INSTALLATION_PATH]
    code = 0
    try:
        if flag == "-m":
            sys.modules.pop(target, None)  # it runs afresh as __main__, as under `python -m`
            sys.argv = [target, *rest]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["-c", *rest]
            exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - reported as the interpreter reports an uncaught exception
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what the imports print goes to stderr, not into the answers
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # on a Ctrl-C of the tests the server ends with its stdin
    import importlib

    for module in PRELOADED:
        importlib.import_module(module)
    children: dict[int, int | None] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if "start" in request:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _become(request["start"], answers.fileno())
            children[pid] = None
            answers.write(json.dumps({"pid": pid}) + "\n")
        else:
            pid = request["poll"]
            if children.get(pid, 0) is None:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    children[pid] = os.waitstatus_to_exitcode(status)
            answers.write(json.dumps({"returncode": children.get(pid)}) + "\n")
    for pid, code in children.items():  # the client has gone: stop what still runs
        if code is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)


if __name__ == "__main__":
    _serve()
