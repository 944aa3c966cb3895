"""A child process that runs our command-line tools one after another (for tests/cli_support.py).

Each line on stdin is a JSON request ``{"tool": "caget", "args": [...],
"env": {...}}``; the tool's ``main(args)`` runs in this process with that
environment and its stdout and stderr captured, and one JSON line with
``rc``, ``out`` and ``err`` (Latin-1 text) answers it.  Each run makes and
closes its own Context, as a fresh process does; only the imports are shared,
so a differential test pays the interpreter's start-up once, not per case.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import traceback


def serve() -> None:
    reply = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        saved = {key: os.environ.get(key) for key in req["env"]}
        for key, value in req["env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        out, err = io.BytesIO(), io.BytesIO()
        wrappers = [io.TextIOWrapper(stream, encoding="latin-1", write_through=True) for stream in (out, err)]
        sys.stdout, sys.stderr = wrappers
        try:
            rc = importlib.import_module(f"caclient.cli.{req['tool']}").main(req["args"])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            rc = 99
        finally:
            for wrapper in wrappers:
                wrapper.flush()
                wrapper.detach()  # (closing the wrapper would close the buffer)
            sys.stdout, sys.stderr = reply, sys.__stderr__
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        answer = {"rc": rc, "out": out.getvalue().decode("latin-1"), "err": err.getvalue().decode("latin-1")}
        reply.write(json.dumps(answer) + "\n")
        reply.flush()


if __name__ == "__main__":
    serve()
