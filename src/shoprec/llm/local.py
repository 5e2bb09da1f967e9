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
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from shoprec.llm.errors import LLMUnavailable
from shoprec.llm.models import ensure_model, model_spec
from shoprec.llm.settings import LLMSettings

_HEALTH_POLL_S = 0.1


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
