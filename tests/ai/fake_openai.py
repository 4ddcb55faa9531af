"""A local OpenAI-compatible server for tests: the real protocol, scripted answers.

- ``POST /v1/chat/completions``: JSON (``chat.completion``) or, with ``"stream": true``, server-sent events
  (``data: {chat.completion.chunk}\\n\\n`` … ``data: [DONE]\\n\\n``, usage in a last chunk when
  ``stream_options.include_usage`` is set), chunked transfer encoding, a pause between chunks;
- errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` (401 for a wrong key);
- ``GET /v1/models``.

Answers come from ``FakeOpenAI.queue`` (``Reply`` objects, first in first out) and, when it is empty, from a
default responder that answers each capability sensibly (a valid tool, an edit of the current source, an
explanation, a completion) from the prompt the service sent. ``FakeOpenAI.requests`` records every request.

Run alone (for latency measurements or manual tries): ``python -m tests.ai.fake_openai --port 8999``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
               429: "rate_limit_error", 500: "server_error", 503: "server_error"}

GENERATED_SOURCE = '''import csv

import skriptoteket_toolkit as skr
from tool_errors import ToolUserError


def run_tool(input_dir, output_dir):
    inputs = skr.read_inputs()
    names = [n.strip() for n in inputs.get("names", "").splitlines() if n.strip()]
    if not names:
        raise ToolUserError("Write at least one name.")
    size = inputs.get("group_size", 2)
    groups = [names[i:i + size] for i in range(0, len(names), size)]
    rows = [{"group": n + 1, "members": ", ".join(g)} for n, g in enumerate(groups)]
    with open(f"{output_dir}/groups.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        for row in rows:
            writer.writerow([row["group"], row["members"]])
    return {"outputs": [
        {"kind": "notice", "level": "info", "message": f"{len(groups)} groups"},
        {"kind": "table", "columns": [{"key": "group", "label": "Group"}, {"key": "members", "label": "Members"}],
         "rows": rows},
    ]}
'''
GENERATED_INPUT_SCHEMA = [
    {"kind": "text", "name": "names", "label": "Names, one per line", "required": True},
    {"kind": "integer", "name": "group_size", "label": "Group size", "default": 2, "min": 2, "max": 10},
]


def generated_answer() -> str:
    return (
        "A tool that splits a list of names into groups.\n\n"
        f"```python skr-source\n{GENERATED_SOURCE}```\n\n"
        f"```json skr-input-schema\n{json.dumps(GENERATED_INPUT_SCHEMA, indent=2)}\n```\n\n"
        "```json skr-settings-schema\nnull\n```\n\n"
        "````markdown skr-instructions\nWrite the names, one per line, and choose the group size.\n````\n\n"
        '```json skr-tool\n{"title": "Group maker", "summary": "Splits names into groups."}\n```\n'
    )


def _block(prompt: str, tag: str) -> str | None:
    m = re.search(r"^(`{3,})\w* " + re.escape(tag) + r"\n(.*?)^\1$", prompt, re.S | re.M)
    return m.group(2) if m else None


def default_answer(body: dict) -> str:
    """What a helpful model would say, from the service's prompt."""
    system = next((m["content"] for m in body.get("messages", []) if m.get("role") == "system"), "")
    user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    capability = (re.search(r"\(capability: (\w+)\)", system) or [None, "explain"])[1]
    if capability == "generate":
        return generated_answer()
    if capability == "edit":
        source = _block(user, "skr-source") or ""
        m = re.search(r"The author asks for this change:\n(.*?)\n\nReply", user, re.S)
        instruction = (m.group(1) if m else "change").strip().splitlines()[0]
        new = f"# Change requested: {instruction}\n{source}"
        return f"I add a comment that records the request.\n\n```python skr-source\n{new}```\n"
    if capability == "complete":
        return 'return {"outputs": []}'
    return ("The run failed because the code uses a name that is not defined. "
            "Check the spelling of the variable on the line of the error, "
            "and define it before it is used.")


@dataclass
class Reply:
    text: str | None = None  # the assistant's answer (None: the default responder's)
    chunks: list[str] | None = None  # pieces of the stream (default: split by words)
    delay: float = 0.0  # seconds before anything is answered
    chunk_delay: float = 0.05  # seconds between stream chunks
    status: int = 200
    error_message: str = "error"
    raw: bytes | None = None  # a garbage body, sent as is with status 200
    raw_stream: list[bytes] | None = None  # garbage stream events
    usage: tuple[int, int] | None = None  # (prompt, completion) tokens; default: estimated from the text
    report_usage: bool = True


@dataclass
class FakeOpenAI:
    api_key: str = "test-key"
    queue: list[Reply] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    default_chunk_delay: float = 0.05
    port: int = 0

    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = _QuietServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        self.queue[:] = list(replies)

    def next_reply(self) -> Reply:
        return self.queue.pop(0) if self.queue else Reply(chunk_delay=self.default_chunk_delay)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that hung up (timeouts) is not news
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeOpenAI

    def log_message(self, *args):  # quiet
        pass

    def _json(self, status: int, data: dict) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"),
                                      "param": None, "code": None}})

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            return self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model",
                                                                "created": 0, "owned_by": "tests"}]})
        self._error(404, "not found")

    def do_POST(self):
        fake = self.server_fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route {self.path}")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error(400, "invalid JSON")
        fake.requests.append({"body": body, "authorization": self.headers.get("Authorization", ""),
                              "at": time.monotonic()})
        if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            return self._error(401, "Incorrect API key provided.")
        reply = fake.next_reply()
        if reply.delay:
            time.sleep(reply.delay)
        try:
            if reply.status >= 400:
                return self._error(reply.status, reply.error_message)
            if reply.raw is not None and not body.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.raw)))
                self.end_headers()
                self.wfile.write(reply.raw)
                return
            text = reply.text if reply.text is not None else default_answer(body)
            prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
            usage = reply.usage or (max(1, prompt_chars // 4), max(1, len(text) // 4))
            usage_obj = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
            model = body.get("model", "fake-model")
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and reply.report_usage
                return self._stream(reply, text, model, usage_obj if include_usage else None)
            data = {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            }
            if reply.report_usage:
                data["usage"] = usage_obj
            self._json(200, data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(self, reply: Reply, text: str, model: str, usage: dict | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(delta: dict | None, finish=None, usage_part=None) -> bytes:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model,
                     "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage_part is not None:
                chunk["usage"] = usage_part
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        if reply.raw_stream is not None:
            for part in reply.raw_stream:
                self._chunk(part)
                time.sleep(reply.chunk_delay)
            self._chunk(b"")
            return
        pieces = reply.chunks if reply.chunks is not None else _split(text)
        self._chunk(event({"role": "assistant", "content": ""}))
        for piece in pieces:
            time.sleep(reply.chunk_delay)
            self._chunk(event({"content": piece}))
        self._chunk(event({}, finish="stop"))
        if usage is not None:
            self._chunk(event(None, usage_part=usage))
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")


def _split(text: str, parts: int = 8) -> list[str]:
    """The text in about ``parts`` pieces, split after whitespace (so pieces join back exactly)."""
    words = re.findall(r"\S*\s*", text)
    words = [w for w in words if w]
    size = max(1, -(-len(words) // parts))
    return ["".join(words[i:i + size]) for i in range(0, len(words), size)] or [text]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeOpenAI(api_key=args.api_key, port=args.port, default_chunk_delay=args.chunk_delay).start()
    print(f"fake OpenAI server on {fake.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
