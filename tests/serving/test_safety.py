"""URL fetching that cannot be turned against the server's network, text checks, and the API key."""

from __future__ import annotations

import http.server
import ipaddress
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import httpx
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import TEST_LIMITS, chat_body, healthy, noise_png, serving

from univg.serving.config import ServeConfig
from univg.serving.safety import ApiError, FetchError, check_text, fetch_url, is_public_address

PNG = noise_png(seed=3)


class _ImageHost(http.server.BaseHTTPRequestHandler):
    """Serves PNG at /a.png, a large body at /big, a slow one at /slow, redirects at /to/<url>."""

    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/to/") :])
            self.end_headers()
            return
        if self.path == "/slow":
            self.send_response(200)
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
            return
        body = b"x" * 5000 if self.path == "/big" else PNG
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if self.path != "/big":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _only_127_0_0_1(address) -> bool:
    return str(address) == "127.0.0.1"


def test_fetching_follows_the_limits(image_host):
    host = f"http://{image_host}"
    assert fetch_url(f"{host}/a.png", max_bytes=10**6, timeout_s=5, address_allowed=_only_127_0_0_1) == PNG
    redirected = fetch_url(f"{host}/to//a.png", max_bytes=10**6, timeout_s=5, address_allowed=_only_127_0_0_1)
    assert redirected == PNG
    with pytest.raises(FetchError, match="more than the limit of 1000 bytes"):
        fetch_url(f"{host}/big", max_bytes=1000, timeout_s=5, address_allowed=_only_127_0_0_1)
    with pytest.raises(FetchError, match=f"sends {len(PNG)} bytes"):  # from Content-Length, before reading
        fetch_url(f"{host}/a.png", max_bytes=100, timeout_s=5, address_allowed=_only_127_0_0_1)
    with pytest.raises(FetchError, match="took"):
        fetch_url(f"{host}/slow", max_bytes=10**6, timeout_s=0.3, address_allowed=_only_127_0_0_1)
    with pytest.raises(FetchError, match="not a public address"):  # each redirect is checked again
        port = image_host.split(":")[1]
        fetch_url(
            f"{host}/to/http://127.0.0.2:{port}/a.png",
            max_bytes=10**6,
            timeout_s=5,
            address_allowed=_only_127_0_0_1,
        )
    with pytest.raises(FetchError, match="more than 2 redirects"):
        fetch_url(
            f"{host}/to//to//to//a.png",
            max_bytes=10**6,
            timeout_s=5,
            max_redirects=2,
            address_allowed=_only_127_0_0_1,
        )


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::", False),
        ("ff02::1", False),
    ],
)
def test_public_addresses(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.fixture(scope="module")
def fetching_server(varied_predictor):
    """A server started with --allow-url-fetch: it still refuses everything not public."""
    config = ServeConfig(model_name="tiny", allow_url_fetch=True, limits=TEST_LIMITS)
    with serving(varied_predictor, config) as running:
        yield running


def test_urls_that_must_never_be_fetched(fetching_server, image_host):
    port = image_host.split(":")[1]
    refused = [
        f"http://127.0.0.1:{port}/a.png",
        f"http://localhost:{port}/a.png",
        f"http://[::1]:{port}/a.png",
        f"http://2130706433:{port}/a.png",  # 127.0.0.1 as one number
        f"http://0x7f.1:{port}/a.png",  # and in hex
        f"http://127.1:{port}/a.png",
        f"http://0.0.0.0:{port}/a.png",
        f"http://[::ffff:127.0.0.1]:{port}/a.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/a.png",
        "http://192.168.0.1/a.png",
        "http://[fe80::1]/a.png",
        f"https://127.0.0.1:{port}/a.png",
        f"http://user:secret@127.0.0.1:{port}/a.png",
        "file:///etc/passwd",
        "ftp://127.0.0.1/a.png",
        "gopher://127.0.0.1:70/",
    ]
    _ImageHost.hits.clear()
    for url in refused:
        body = {
            "model": "tiny",
            "max_tokens": 4,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": url}},
                        {"type": "text", "text": "Find it."},
                    ],
                }
            ],
        }
        response = httpx.post(fetching_server.url + "/v1/chat/completions", json=body, timeout=30)
        assert response.status_code == 400, (url, response.text)
        assert any(
            word in response.json()["error"]["message"]
            for word in ("public address", "never read", "credentials")
        ), url
    assert _ImageHost.hits == []  # nothing reached the loopback host
    assert healthy(fetching_server.url)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=60))
def test_ordinary_text_passes(text):
    if any((ord(c) & 0xFFFE) == 0xFFFE or 0xFDD0 <= ord(c) <= 0xFDEF for c in text):
        return
    check_text(text, "question", frozenset({"<|image_pad|>"}))


@given(
    st.text(max_size=20),
    st.sampled_from(["\ud800", "\udc00", "\x00", "\x07", "\x7f", "\x85", "\ufffe", "<|image_pad|>"]),
    st.text(max_size=20),
)
def test_junk_anywhere_is_refused(before, junk, after):
    with pytest.raises(ApiError) as error:
        check_text(before + junk + after, "question", frozenset({"<|image_pad|>"}))
    assert error.value.status == 400 and error.value.param == "question"


@pytest.fixture(scope="module")
def keyed_server(varied_predictor):
    config = ServeConfig(model_name="tiny", api_key="s3cret-key", limits=TEST_LIMITS)
    with serving(varied_predictor, config) as running:
        yield running


def test_an_api_key_guards_the_api(keyed_server):
    url = keyed_server.url
    body = chat_body("Find it.", PNG, max_tokens=4)
    missing = httpx.post(url + "/v1/chat/completions", json=body)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert "missing API key" in missing.json()["error"]["message"]
    wrong = httpx.post(url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "wrong API key"
    for path in ("/v1/models", "/metrics"):
        assert httpx.get(url + path).status_code == 401
    assert httpx.get(url + "/healthz").json()["auth_required"] is True
    assert httpx.get(url + "/").status_code == 200  # the page asks for the key itself
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed_server.openai_url, api_key="nope", max_retries=0).models.list()
    client = openai.OpenAI(base_url=keyed_server.openai_url, api_key="s3cret-key", max_retries=0)
    assert client.chat.completions.create(model="tiny", messages=body["messages"], max_tokens=4).choices
