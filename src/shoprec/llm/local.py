"""The offline default backend: llama.cpp's own HTTP server, run inside this process by the ``xllamacpp`` wheel
(prebuilt, MIT), serving the OpenAI API on 127.0.0.1 on a free port. The HTTP client talks to it exactly as to a
remote server, so the local and the remote path are one code path.

Measured on 2 cores shared with other work (``scripts/bench_llm.py``): SmolLM2-135M loads in 1 s and generates
~50 tokens/s; the default Qwen2.5-Coder-1.5B loads in 3.5-7 s and generates 7-9 tokens/s with 1-2 threads
(about 15 on an idle core). llama.cpp's OpenMP workers spin while they wait by default, which on shared cores fell
to 2 tokens/s: ``OMP_WAIT_POLICY=PASSIVE`` is set (unless already set) before the library loads, since the OpenMP
runtime reads it once, when it is loaded.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from shoprec.llm.errors import LLMUnavailable
from shoprec.llm.models import ensure_model, model_spec
from shoprec.llm.settings import LLMSettings

_HEALTH_POLL_S = 0.1
SIDECAR_START_S = 300.0  # assembling and hashing a 1.1 GB model on first use, then loading it


class LocalServer:
    """One llama.cpp server on one model file; ``with LocalServer(...) as server:`` starts it, waits until it is
    healthy and stops it on exit. ``base_url`` is the OpenAI API root (``http://127.0.0.1:<port>/v1``).
    """

    def __init__(
        self,
        model_path: Path,
        *,
        alias: str,
        threads: int = 1,
        parallel: int = 1,
        context_tokens: int = 4096,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.model_path = model_path
        self.alias = alias  # the "model" name the server reports in its answers
        self.threads = threads
        self.parallel = parallel  # requests decoded at once (llama.cpp slots)
        self.context_tokens = context_tokens  # per slot
        self.startup_timeout_s = startup_timeout_s
        self._server: Any = None
        self._address: str | None = None

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> LocalServer:
        """A server for ``settings.model``, its file assembled and verified first (raises if it cannot be)."""
        spec = model_spec(settings.model)
        return cls(
            ensure_model(spec, settings.model_dir),
            alias=spec.name,
            threads=settings.threads,
            parallel=settings.max_concurrency,
            context_tokens=settings.context_tokens,
        )

    @property
    def base_url(self) -> str:
        if self._address is None:
            raise RuntimeError("the local LLM server is not running")
        return f"{self._address}/v1"

    def start(self) -> None:
        """Load the model (blocking: seconds for a 1.5B model) and wait until the server answers /health."""
        if self._server is not None:
            raise RuntimeError("the local LLM server is already running")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before the OpenMP runtime loads with xllamacpp
        try:
            import xllamacpp
        except ImportError:
            raise LLMUnavailable("the local LLM backend needs xllamacpp: pip install 'shoprec[llm]'") from None
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {self.alias}
        params.n_parallel = self.parallel
        params.n_ctx = self.context_tokens * self.parallel  # llama.cpp splits the context among its slots
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.verbosity = 0  # failures reach the caller as HTTP errors; the log would only repeat them
        try:
            self._server = xllamacpp.Server(params)  # binds 127.0.0.1 on a free port
        except RuntimeError as error:
            raise LLMUnavailable(f"llama.cpp could not load {self.model_path}: {error}") from error
        self._address = str(self._server.listening_address)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            try:
                if httpx.get(f"{self._address}/health", timeout=5.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise LLMUnavailable(
                    f"the local LLM server at {self._address} was not healthy after {self.startup_timeout_s:.0f} s"
                )
            time.sleep(_HEALTH_POLL_S)

    def stop(self) -> None:
        """Stop serving: dropping the last reference makes xllamacpp end its loop and free the model."""
        self._server = None
        self._address = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


class Sidecar:
    """A ``LocalServer`` in a child process (``python -m shoprec.llm.local``) at the lowest CPU priority: what
    ``shoprec serve`` runs, so that every API worker shares one loaded model and a generating LLM yields the cores
    to feeds and searches (the LLM is never on the feed's hot path). On Linux the child runs as SCHED_IDLE, on
    CPU time nothing else wants: at niceness 10 alone, chat turns still took a core from the feed (at 500 feeds/s
    the feed's p50 went from 3.8 to 23.7 ms, docs/llm.md). ``start`` returns the OpenAI API root.
    """

    def __init__(self, settings: LLMSettings, niceness: int = 10) -> None:
        self.settings = settings
        self.niceness = niceness
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        command = [sys.executable, "-m", "shoprec.llm.local", str(self.niceness)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(self.settings.model_dump_json() + "\n")  # stdin stays open: see _sidecar
        self._process.stdin.flush()
        ready, _, _ = select.select([self._process.stdout], [], [], SIDECAR_START_S)
        outcome = self._process.stdout.readline().strip() if ready else ""
        if not outcome.startswith("http"):
            self.stop()
            raise LLMUnavailable(outcome or f"the local LLM process was not ready within {SIDECAR_START_S:.0f} s")
        return outcome

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        self._process = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _sidecar(niceness: int) -> None:
    """The child: settings as one JSON line on stdin; prints the API root (or why it could not start), then serves
    until terminated or until stdin ends, which is when the parent is gone, however it died. Its own session: a
    Ctrl-C in the terminal reaches the parent, which decides when to stop it."""
    os.nice(niceness)
    if hasattr(os, "SCHED_IDLE"):  # Linux: run only on CPU time nothing else wants; threads made later inherit it
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    settings = LLMSettings.model_validate_json(sys.stdin.readline())
    try:
        server = LocalServer.from_settings(settings)
        server.start()
    except LLMUnavailable as error:
        print(str(error).replace("\n", " "), flush=True)
        raise SystemExit(1) from None
    print(server.base_url, flush=True)
    sys.stdin.read()  # returns at EOF: the parent closed the pipe or died


if __name__ == "__main__":
    _sidecar(int(sys.argv[1]))
