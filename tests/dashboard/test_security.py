"""The dashboard is safe by default: loopback only, a password elsewhere, no cross-site changes, no secrets shown.

All against a dashboard served by real uvicorn on a memory:// store of its own (nothing here needs a broker).
"""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid

import httpx
import pytest

from fairq.dashboard.security import Guard, check_bind, is_loopback
from fairq.errors import ConfigurationError
from tests.support.dashboard import StreamReader, dashboard, post

SECRET = "s3cr3t-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def served():
    with dashboard(f"memory://dash-sec-{uuid.uuid4().hex[:8]}") as server:
        yield server


def test_the_page_carries_a_csrf_token_and_says_it_must_not_be_framed_or_run_foreign_scripts(served):
    response = httpx.get(served.url)
    assert response.status_code == 200
    assert f'<meta name="csrf-token" content="{served.app.state.guard.csrf_token}">' in response.text
    assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_post_without_the_token_is_refused(served):
    response = post(served, "/api/deadletters/replay", {"queue": "q"}, token="")
    assert response.status_code == 403 and "CSRF" in response.text
    response = post(served, "/api/deadletters/purge", {"queue": "q", "confirm": "q"}, token="forged")
    assert response.status_code == 403


def test_a_post_from_another_origin_is_refused_even_with_the_token(served):
    response = post(served, "/api/deadletters/replay", {"queue": "q"}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and "cross-origin" in response.text
    response = post(served, "/api/deadletters/replay", {"queue": "q"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and "cross-site" in response.text


def test_a_post_with_the_token_from_the_page_itself_goes_through(served):
    response = post(served, "/api/deadletters/replay", {"queue": f"nothing-{uuid.uuid4().hex[:6]}"})
    assert response.status_code == 404 and "no dead-letter queue" in response.json()["error"]


def test_changes_are_posts_only(served):
    assert httpx.get(served.url + "api/deadletters/purge?queue=q&confirm=q").status_code == 405


def test_purge_needs_the_queue_named_again(served):
    response = post(served, "/api/deadletters/purge", {"queue": "q"})
    assert response.status_code == 400 and "confirm" in response.json()["error"]


def test_a_request_naming_another_host_is_refused_without_a_password(served):
    """DNS rebinding: a foreign page whose name resolves to 127.0.0.1 must not read the dashboard."""
    response = httpx.get(served.url, headers={"Host": f"evil.example:{served.port}"})
    assert response.status_code == 403
    assert httpx.get(served.url, headers={"Host": f"localhost:{served.port}"}).status_code == 200


def test_another_address_than_loopback_needs_a_password():
    with pytest.raises(ConfigurationError, match="password"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "pw")
    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")
    result = subprocess.run([sys.executable, "-m", "fairq", "dashboard", "--host", "0.0.0.0", "--port", "0",
                             "-b", "memory://x"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "password" in result.stderr and "Traceback" not in result.stderr


def test_with_a_password_every_request_needs_it_and_no_page_shows_it():
    with dashboard(f"memory://dash-pw-{uuid.uuid4().hex[:8]}", password=SECRET) as server:
        assert httpx.get(server.url).status_code == 401
        assert "Basic" in httpx.get(server.url).headers["www-authenticate"]
        assert httpx.get(server.url, auth=("anyone", "wrong")).status_code == 401
        assert httpx.get(server.url + "api/deadletters", auth=("x", "wrong")).status_code == 401
        auth = ("anyone", SECRET)
        pages = [httpx.get(server.url + path, auth=auth) for path in
                 ("", "static/dashboard.js", "static/timeline.js", "static/deadletters.js", "api/deadletters")]
        assert all(page.status_code == 200 for page in pages)
        with StreamReader(server.url, auth=auth) as reader:
            reader.wait(lambda r: r.of("snapshot"), "the snapshot")
        assert not any(SECRET in page.text for page in pages)
        assert not any(SECRET in line for line in reader.raw)


def test_a_guard_compares_the_password_whole():
    guard = Guard("0.0.0.0", "pw")
    basic = lambda text: "Basic " + base64.b64encode(text.encode()).decode()  # noqa: E731
    assert guard.authorized(basic("u:pw")) and guard.authorized(basic(":pw"))
    assert not guard.authorized(basic("u:pw2")) and not guard.authorized(basic("u:p"))
    assert not guard.authorized("Basic !!!") and not guard.authorized(None) and not guard.authorized("Bearer pw")


def test_the_broker_url_is_shown_without_its_password_and_its_absence_as_a_problem():
    """A broker that does not answer (nothing listens on port 1): the page learns where, redacted, and why not."""
    with dashboard(f"amqp://fairq:{SECRET}@127.0.0.1:1/") as server:
        with StreamReader(server.url) as reader:
            status = reader.wait(lambda r: [s for s in r.of("status") if s["problem"] and "connecting" not in
                                            s["problem"]], "the broker's problem")[-1]
        page = httpx.get(server.url).text
    assert status["connected"] is False
    assert status["broker"] == "amqp://fairq:***@127.0.0.1:1/"
    assert not any(SECRET in line for line in reader.raw) and SECRET not in page
