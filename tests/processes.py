"""Running ``wispbill`` commands as real processes in tests, their output collected as it comes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

WISPBILL = Path(sys.executable).with_name("wispbill")


class Scheduler:
    """One ``wispbill scheduler`` process, its output collected line by line as it comes."""

    def __init__(self, env: dict):
        command = [str(WISPBILL)] if WISPBILL.exists() else [sys.executable, "-m", "core.cli"]
        self.process = subprocess.Popen(command + ["scheduler"], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        """The first output line containing ``text``; fails the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                assert left > 0, f"no line with {text!r} after {timeout}s; output:\n{self.output}"
                self._changed.wait(min(left, 0.1))

    @property
    def holder(self) -> str:
        return self.wait_for("scheduler starting with").rsplit(" as ", 1)[1]
