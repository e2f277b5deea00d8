"""A small OpenAI-compatible model server for tests (stdlib only), on 127.0.0.1.

``python -m tests.stub_model PORT RECORD.jsonl``: answers /v1/chat/completions and
/v1/models, and appends what it received (path, the distillguard headers, the body) to
RECORD.jsonl, so a test can see what a gateway passed on."""
from __future__ import annotations

import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    record_path = ""

    def log_message(self, fmt, *args):   # quiet: the record file is the log
        pass

    def _send(self, code: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "stub-model", "object": "model", "created": 0,
                                                      "owned_by": "stub"}]})

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-distillguard")}
        with open(self.record_path, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": headers, "body": req}) + "\n")
        usage = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
        self._send(200, {"id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
                         "model": req.get("model", "stub-model"),
                         "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                      "message": {"role": "assistant", "content": "stub answer"}}],
                         "usage": usage})


if __name__ == "__main__":
    Handler.record_path = sys.argv[2]
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
