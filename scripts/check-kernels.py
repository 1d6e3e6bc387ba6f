#!/usr/bin/python3
"""Starts each installed Jupyter kernel (or the ones named) and runs one cell in it.

    /usr/bin/python3 scripts/check-kernels.py [KERNELSPEC...]

Checks what scripts/install.sh registered: every kernelspec must start, answer `1+1` with 2 and
shut down. Uses Debian's jupyter_client (python3-jupyter-client), so run it with /usr/bin/python3.
Exits non-zero when a kernel fails.
"""
import os
import queue
import sys
import tempfile
import time

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel

CELL = {"ir": "1 + 1"}
# Keeps ipykernel's debugger warnings out of the report.
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def run_cell(name: str, code: str, cwd: str) -> str:
    manager, client = start_new_kernel(kernel_name=name, cwd=cwd, startup_timeout=90)
    try:
        msg_id = client.execute(code)
        out = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                msg = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                raise RuntimeError(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                # Deno can publish its execute_result just after going idle.
                if not out:
                    deadline = min(deadline, time.monotonic() + 2)
                    continue
                return "".join(out).strip()
        if out:
            return "".join(out).strip()
        raise TimeoutError("no answer")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> int:
    specs = KernelSpecManager().find_kernel_specs()
    names = sys.argv[1:] or sorted(specs)
    failed = 0
    with tempfile.TemporaryDirectory() as cwd:
        for name in names:
            if name not in specs:
                print(f"{name}: not installed")
                failed += 1
                continue
            started = time.monotonic()
            try:
                answer = run_cell(name, CELL.get(name, "1+1"), cwd)
            except Exception as err:  # noqa: BLE001 - report any failure and go on to the next kernel
                print(f"{name}: FAILED ({err})")
                failed += 1
                continue
            ok = answer.endswith("2")
            failed += 0 if ok else 1
            print(f"{name}: {'ok' if ok else 'WRONG ANSWER'} ({answer!r} in {time.monotonic() - started:.1f}s, {specs[name]})")
    sys.stdout.flush()
    # jupyter_client's finalizers log after the interpreter has torn logging down: skip them.
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()
