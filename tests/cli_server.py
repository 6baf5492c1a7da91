"""A fork server for `python -m bot` (tests/world.py `World.run_cli`): the suite's CLI processes
without the interpreter start and the imports each time.

Started once per test process as `python tests/cli_server.py` with the test process's
environment. It imports the bot (nothing else: no thread, no file, no socket, no logging
set up), then for each request forks a child which takes the request's environment, working
directory, argv and output files and runs exactly what `bot/__main__.py` runs,
`raise SystemExit(main())`, at the top level, so the child ends as `python -m bot` ends: its
non-daemon threads joined, `atexit` run, its exit status or the signal that killed it seen by
the caller. Each run is still a process of its own (own pid, locks, memory, signals); only the
start is shared, which is why `World.run_cli` falls back to a fresh interpreter whenever the
environment changes what a start would do (PYTHON*, locale variables).

Protocol on stdin/stdout, one JSON line each: `{"ready": 1}` once imported; then for each
request `{"args": [...], "env": {...}, "cwd": ..., "stdout": path, "stderr": path}`,
`{"pid": N}` once forked and `{"status": S}` once it ended (as `subprocess` gives it: -signal
when killed).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time

# The modules `python -m bot` would import, the lazily imported ones of the commands included.
import bot.app
import bot.cli
import bot.handover
import bot.i18n
import bot.lease
import bot.ledger
import bot.scheduler
import bot.sheet.setup
import bot.sheet.writes

MAIN = os.path.join(os.path.dirname(bot.cli.__file__), "__main__.py")


def serve() -> None:
    """Answer requests until stdin closes (then exit); return in each forked child."""
    # The imported modules' objects outlive every run: out of the collector's sight, a child
    # does not go through (and copy) all of them at each collection and at its exit.
    gc.freeze()
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.write(answers, b'{"ready": 1}\n')
    for line in requests:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            requests.close()
            os.close(answers)
            os.close(devnull)
            for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(out, fd)
                os.close(out)
            os.environ.clear()
            os.environ.update(request["env"])
            time.tzset()
            os.chdir(request["cwd"])
            sys.path[0] = os.getcwd()  # as `python -m` puts it
            sys.argv = [MAIN, *request["args"]]
            return
        os.write(answers, (json.dumps({"pid": pid}) + "\n").encode())
        _, status = os.waitpid(pid, 0)
        os.write(
            answers, (json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n").encode()
        )
    raise SystemExit(0)


serve()
raise SystemExit(bot.cli.main())
