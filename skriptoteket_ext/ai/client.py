"""The model client: one ``openai.AsyncOpenAI`` per endpoint, no retries, a hard deadline per call.

Every failure of the model becomes an ``ApiError`` with a stable ``ai_*`` code whose message (English or
Swedish, ``locale/ai.*.json``) tells the author, in one line, what happened — never a traceback and never the
model's own error text (it may echo the prompt). Nothing here logs prompts or answers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Awaitable, Callable

import httpx
import openai

from ..errors import ApiError
from .config import CapabilityConfig

log = logging.getLogger("skriptoteket.ai")

OnDelta = Callable[[str], Awaitable[None]]


@dataclass
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    usage_reported: bool
    finish_reason: str | None = None
    chunks: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class _CallerFailed(Exception):
    """The delta callback (the author's connection) failed: not the model's fault, re-raised as is."""

    def __init__(self, original: BaseException):
        self.original = original


_warm = threading.Event()
_warm_lock = threading.Lock()


def warm_up() -> None:
    """Build ``openai``'s lazily made types once (seconds on a slow machine): in the background when the
    service starts with AI on, and before the first call's deadline starts, so it never counts as a timeout."""
    if _warm.is_set():
        return
    with _warm_lock:
        if _warm.is_set():
            return
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="x", max_retries=0).chat.completions
        ChatCompletion.model_validate({
            "id": "w", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "w"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })
        ChatCompletionChunk.model_validate({
            "id": "w", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "w"}, "finish_reason": None}],
        })
        _warm.set()


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def upstream_error(exc: BaseException, cfg: CapabilityConfig) -> ApiError:
    """The envelope an author sees for a failure of the model (and a log line for the admin, without content)."""
    if isinstance(exc, (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError, httpx.TimeoutException)):
        code, status = "ai_timeout", 504
    elif isinstance(exc, openai.APIConnectionError):
        code, status = "ai_unreachable", 502
    elif isinstance(exc, openai.RateLimitError):
        code, status = "ai_upstream_busy", 503
    elif isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)):
        code, status = "ai_misconfigured", 503
    elif isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError)):
        code, status = "ai_upstream_rejected", 502
    elif isinstance(exc, openai.APIStatusError):
        code, status = "ai_upstream_error", 502
    else:  # unparseable responses, broken streams, wrong shapes
        code, status = "ai_bad_answer", 502
    upstream_status = getattr(exc, "status_code", None)
    log.warning("AI %s: model call failed: %s (%s%s)", cfg.capability, code, type(exc).__name__,
                f", HTTP {upstream_status}" if upstream_status else "")
    return ApiError(status, code, details={"capability": cfg.capability})


class ModelClient:
    """Shared by all requests of the service: connection pools are kept per endpoint."""

    def __init__(self):
        self._clients: dict[tuple, openai.AsyncOpenAI] = {}

    def _client(self, cfg: CapabilityConfig) -> openai.AsyncOpenAI:
        key = (cfg.base_url, cfg.api_key, cfg.timeout)
        client = self._clients.get(key)
        if client is None:
            client = openai.AsyncOpenAI(
                base_url=cfg.base_url,
                api_key=cfg.api_key or "not-needed",  # llama.cpp and vLLM accept any key unless told otherwise
                timeout=httpx.Timeout(cfg.timeout, connect=min(10.0, cfg.timeout)),
                max_retries=0,  # a retry would double the author's wait and the budget; the author may retry
            )
            self._clients[key] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def chat(self, cfg: CapabilityConfig, messages: list[dict], on_delta: OnDelta | None = None) -> Answer:
        """One chat completion. With ``on_delta`` the model's stream is relayed piece by piece as it arrives."""
        if not _warm.is_set():
            await asyncio.to_thread(warm_up)
        try:
            async with asyncio.timeout(cfg.timeout):
                if on_delta is None:
                    answer = await self._complete(cfg, messages)
                else:
                    answer = await self._stream(cfg, messages, on_delta)
        except _CallerFailed as failed:
            raise failed.original from None
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 — every model failure becomes one clear envelope
            raise upstream_error(exc, cfg) from None
        if not answer.text.strip():
            log.warning("AI %s: the model returned an empty answer", cfg.capability)
            raise ApiError(502, "ai_bad_answer", details={"capability": cfg.capability})
        if not answer.usage_reported:
            answer.prompt_tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in messages)
            answer.completion_tokens = estimate_tokens(answer.text)
        return answer

    def _params(self, cfg: CapabilityConfig, messages: list[dict]) -> dict:
        return {"model": cfg.model, "messages": messages, "max_tokens": cfg.max_tokens, "temperature": cfg.temperature}

    async def _complete(self, cfg: CapabilityConfig, messages: list[dict]) -> Answer:
        response = await self._client(cfg).chat.completions.create(**self._params(cfg, messages))
        choice = response.choices[0]
        text = choice.message.content
        if not isinstance(text, str):
            raise ValueError("no text in the answer")
        usage = response.usage
        return Answer(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            usage_reported=usage is not None,
            finish_reason=choice.finish_reason,
            chunks=1,
        )

    async def _stream(self, cfg: CapabilityConfig, messages: list[dict], on_delta: OnDelta) -> Answer:
        params = self._params(cfg, messages)
        if cfg.stream_usage:
            params["stream_options"] = {"include_usage": True}
        stream = await self._client(cfg).chat.completions.create(**params, stream=True)
        parts: list[str] = []
        usage = None
        finish = None
        chunks = 0
        try:
            async for chunk in stream:
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                for choice in chunk.choices or ():
                    delta = getattr(choice.delta, "content", None) if choice.delta is not None else None
                    if delta:
                        parts.append(delta)
                        chunks += 1
                        try:
                            await on_delta(delta)
                        except Exception as exc:  # noqa: BLE001
                            raise _CallerFailed(exc) from exc
                    if choice.finish_reason:
                        finish = choice.finish_reason
        finally:
            await stream.close()
        return Answer(
            text="".join(parts),
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            usage_reported=usage is not None,
            finish_reason=finish,
            chunks=chunks,
        )
