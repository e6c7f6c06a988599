"""A local stand-in for Slack: the Web API (chat.postMessage, users.lookupByEmail) and incoming
webhooks, over real HTTP. It records what it receives, and answers what a test scripts
(429 with Retry-After, 500, 404 no_service, a garbled answer, a slow answer, no answer at all)
before going back to answering like Slack; with `delay` set, every answer comes that many seconds late.
"""
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str  # without the query string: /api/chat.postMessage, /services/T0/B0/x
    headers: dict
    body: dict  # the JSON body, or the form / query fields

    @property
    def method_name(self):
        """The Web API method (chat.postMessage), or "webhook"."""
        return self.path.removeprefix("/api/") if self.path.startswith("/api/") else "webhook"


@dataclass
class Answer:
    status: int
    body: str
    headers: dict = field(default_factory=dict)
    how: str = "http"  # "http"; "garbled": bytes that are no HTTP answer; "silent": no answer until the server stops
    delay: float = 0  # seconds to wait before answering (a slow Slack)


class FakeSlack:
    def __init__(self):
        self.received = []
        self.users_by_email = {}  # what users.lookupByEmail finds: e-mail -> user id, or a user object ({"id", "deleted", ...})
        self.emails_by_id = {}  # what users.info tells of a user id: its profile e-mail
        self._scripted = []  # (path prefix or "", Answer), used up in order
        self.delay = 0  # seconds each answer waits after the request is recorded: a slow Slack that has posted the message already
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # A short poll interval: shutdown() waits up to one interval, and every test stops a server.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    # --- set-up -----------------------------------------------------------------------------

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()  # frees handlers kept silent
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self):
        """What SLACK_API_URL should be set to."""
        return f"{self.url}/api/"

    def webhook_url(self, name="T000/B000/XXXX"):
        return f"{self.url}/services/{name}"

    def answer_next(self, status, body=None, *, headers=None, times=1, path=""):
        """Answer the next `times` requests (to paths starting with `path`) with this, then as Slack."""
        if body is None:
            body = {429: "rate_limited", 404: "no_service", 500: "internal error"}.get(status, "")
        text = body if isinstance(body, str) else json.dumps(body)
        with self._lock:
            self._scripted += [(path, Answer(status, text, headers or {}))] * times

    def garble_next(self, *, times=1, path=""):
        """Answer the next requests with bytes that are no HTTP answer (a broken proxy)."""
        with self._lock:
            self._scripted += [(path, Answer(0, "", how="garbled"))] * times

    def stay_silent_next(self, *, times=1, path=""):
        """Accept the next requests and answer nothing (until the server stops): the caller times out."""
        with self._lock:
            self._scripted += [(path, Answer(0, "", how="silent"))] * times

    def slow_next(self, seconds, *, times=1, path=""):
        """Answer the next requests like Slack, but only after `seconds`."""
        with self._lock:
            self._scripted += [(path, Answer(0, "", how="slow", delay=seconds))] * times

    def rate_limit_next(self, retry_after=7, *, times=1, path=""):
        """Slack's 429: the Web API answers {"ok": false, "error": "ratelimited"}, webhooks "rate_limited"."""
        body = {"ok": False, "error": "ratelimited"} if path.startswith("/api") else "rate_limited"
        self.answer_next(429, body, headers={"Retry-After": str(retry_after)}, times=times, path=path)

    # --- what was received --------------------------------------------------------------------

    def calls(self, method_name=None):
        with self._lock:
            return [r for r in self.received if method_name is None or r.method_name == method_name]

    def messages(self):
        """Bodies of delivered messages (webhook posts and chat.postMessage calls) that were answered 200."""
        with self._lock:
            return [r.body for r in self.received if r.method_name in ("webhook", "chat.postMessage") and r.status == 200]

    # --- the server ---------------------------------------------------------------------------

    def _scripted_answer(self, path):
        with self._lock:
            for i, (prefix, answer) in enumerate(self._scripted):
                if path.startswith(prefix):
                    del self._scripted[i]
                    return answer
        return None

    def _slack_answer(self, received):
        if received.method_name == "webhook":
            return Answer(200, "ok")
        if received.method_name == "chat.postMessage":
            return Answer(200, json.dumps({"ok": True, "channel": received.body.get("channel"), "ts": "1700000000.000100"}))
        if received.method_name == "users.lookupByEmail":
            user = self.users_by_email.get(received.body.get("email", ""))
            if user is None:
                return Answer(200, json.dumps({"ok": False, "error": "users_not_found"}))
            user = {"id": user} if isinstance(user, str) else user
            user = {"deleted": False, "is_bot": False, **user, "profile": {"email": received.body["email"]}}
            return Answer(200, json.dumps({"ok": True, "user": user}))
        if received.method_name == "users.info":
            email = self.emails_by_id.get(received.body.get("user", ""))
            if email is None:
                return Answer(200, json.dumps({"ok": False, "error": "user_not_found"}))
            return Answer(200, json.dumps({"ok": True, "user": {"id": received.body["user"], "profile": {"email": email}}}))
        return Answer(200, json.dumps({"ok": False, "error": "unknown_method"}))

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw or parts.query).items()}
                received = Received(self.command, parts.path, dict(self.headers), body)
                answer = fake._scripted_answer(parts.path) or fake._slack_answer(received)
                if answer.how == "slow":
                    fake._stopping.wait(timeout=answer.delay)
                    answer = fake._slack_answer(received)
                received.status = answer.status
                with fake._lock:
                    fake.received.append(received)
                if fake.delay:
                    fake._stopping.wait(timeout=fake.delay)
                if answer.how == "garbled":
                    self.wfile.write(b"GARBAGE\r\n\r\n")
                    self.close_connection = True
                    return
                if answer.how == "silent":
                    fake._stopping.wait(timeout=10)
                    self.close_connection = True
                    return
                data = answer.body.encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json" if data.startswith(b"{") else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller gave up (timed out, or its process was killed) before the answer came

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        return Handler
