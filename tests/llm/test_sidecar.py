"""The local model as `shoprec serve` runs it: one child process, lower CPU priority, gone with its parent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shoprec.llm.local import Sidecar
from shoprec.llm.settings import LLMSettings

PARENT = """
import os, sys
from shoprec.llm.local import Sidecar
from shoprec.llm.settings import LLMSettings
sidecar = Sidecar(LLMSettings.model_validate_json(sys.argv[1]))
sidecar.start()
print(sidecar._process.pid, flush=True)
os._exit(9)  # dies without stopping its sidecar
"""


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _policies(pid: int) -> set[int]:
    """The scheduling policy of every thread of ``pid`` (field 41 of /proc/<pid>/task/<tid>/stat)."""
    return {
        int(task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[38])
        for task in Path(f"/proc/{pid}/task").iterdir()
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_the_sidecar_answers_at_lower_priority_and_stops(llm_settings: LLMSettings) -> None:
    sidecar = Sidecar(llm_settings, niceness=7)
    with sidecar as base_url:
        process = sidecar._process
        assert process is not None
        answer = httpx.post(
            f"{base_url}/chat/completions",
            json={"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4},
            timeout=60,
        )
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
        assert _niceness(process.pid) == _niceness(os.getpid()) + 7
        assert _policies(process.pid) == {os.SCHED_IDLE}  # llama.cpp's threads included
    assert process.poll() is not None


def test_the_sidecar_ends_when_its_parent_dies(llm_settings: LLMSettings) -> None:
    parent = subprocess.run(
        [sys.executable, "-c", PARENT, llm_settings.model_dump_json()], capture_output=True, text=True, timeout=120
    )
    pid = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the LLM process outlived the process that started it"
