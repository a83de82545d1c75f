"""An OpenAI-compatible chat upstream that never reports usage, as llama.cpp's
server and others do in streams: `cargo xtask clients` puts it behind the
route `silent`, so the suites can check that Switchyard counts the tokens
itself and still sends the usage chunk a client asked for.

Usage: python without_usage.py PORT (standard library only). Every answer is
ANSWER below; streams send it a word per chunk, then a finish chunk and
`data: [DONE]`, and never a usage chunk, whatever `stream_options` says.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "Switchyard counts the tokens this upstream never reports."


def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-silent",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "silent-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet: the suites print what matters
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        if request.get("stream"):
            frames = [chunk({"role": "assistant", "content": ""})]
            words = ANSWER.split(" ")
            frames += [chunk({"content": word + " "}) for word in words[:-1]] + [chunk({"content": words[-1]})]
            frames += [chunk({}, "stop"), b"data: [DONE]\n\n"]
            body = b"".join(frames)
            content_type = "text/event-stream"
        else:
            body = json.dumps(
                {
                    "id": "chatcmpl-silent",
                    "object": "chat.completion",
                    "created": 1,
                    "model": "silent-model",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
                    ],
                }
            ).encode()
            content_type = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
