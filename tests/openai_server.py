"""A small OpenAI-compatible HTTP server for tests: /v1/completions and /v1/chat/completions.

It answers GuessNumber by bisection on the feedback in the conversation, so episodes
through it succeed deterministically. It runs on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agentgym.envs.guess_number.oracle import BisectionOracle


class FakeOpenAI:
    def __init__(
        self, tokenizer, n: int = 16, token_ids: bool = True, text_only: bool = False, pinned: str | None = None
    ):
        """`text_only`: like `transformers serve`, refuse token-id prompts and vLLM's sampling
        fields (422); `pinned`: refuse other model names (400), as `transformers serve MODEL` does."""
        self.tokenizer, self.oracle, self.token_ids = tokenizer, BisectionOracle(n), token_ids
        self.text_only, self.pinned = text_only, pinned
        self.requests: list[dict] = []
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload):
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, **req})
                tok = fake.tokenizer
                if fake.pinned and req["model"] != fake.pinned:
                    return self._send(
                        400, {"detail": f"Server is pinned to '{fake.pinned}'; requested '{req['model']}'."}
                    )
                if fake.text_only:
                    unexpected = {"top_k", "min_p", "repetition_penalty", "return_tokens_as_token_ids"} & set(req)
                    if isinstance(req.get("prompt"), list):
                        return self._send(422, {"detail": "prompt must be a string."})
                    if unexpected:
                        return self._send(422, {"detail": f"Unexpected fields in the request: {unexpected}"})
                if self.path.endswith("/chat/completions"):
                    text = fake.oracle.respond(req["messages"])
                    n = len(tok(text, add_special_tokens=False)["input_ids"])
                    content = [{"token": "x", "logprob": -0.5, "bytes": None, "top_logprobs": []} for _ in range(n)]
                    choice = {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": {"content": content},
                    }
                    return self._send(
                        200,
                        {
                            "id": "c",
                            "object": "chat.completion",
                            "created": 0,
                            "model": req["model"],
                            "choices": [choice],
                        },
                    )
                if self.path.endswith("/completions"):
                    prompt = req["prompt"] if isinstance(req["prompt"], str) else tok.decode(req["prompt"])
                    obs = [part.split("<|im_end|>")[0] for part in prompt.split("<|im_start|>user\n")[1:]]
                    text = fake.oracle.respond([{"role": "user", "content": o} for o in obs])
                    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                    if fake.token_ids and req.get("return_tokens_as_token_ids"):
                        tokens = [f"token_id:{i}" for i in ids]
                    else:
                        tokens, ids = [tok.decode([i]) for i in ids[:-1]], ids[:-1]
                    logprobs = {
                        "tokens": tokens,
                        "token_logprobs": [-0.25] * len(tokens),
                        "top_logprobs": None,
                        "text_offset": None,
                    }
                    choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": logprobs}
                    return self._send(
                        200,
                        {
                            "id": "c",
                            "object": "text_completion",
                            "created": 0,
                            "model": req["model"],
                            "choices": [choice],
                        },
                    )
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        return Handler
