"""A real browser against the demo site (issues 8 and 22): headless Chromium signs the guestbook through
the form (POST -> 303 -> GET), the live socket page shows messages pushed by the server, and the sign-in
page keeps a name and a checkbox group in the session, read back through the JSON endpoint /api/me."""

# Strategy: Debian's chromium is installed when missing (tests/e2e_tools.py). The demo is copied into
# tmp_path (its SQLite guestbook lives in .private/) and served by a real Krait on a free port. Chromium
# runs headless with --remote-debugging-port=0 and is driven over the DevTools protocol: Page.navigate to
# load pages, Runtime.evaluate to fill and submit the form and to read the DOM. Everything the test checks
# is what a visitor would see: the page text, the cookie-backed counter, no script of a guestbook
# entry running, and who the sign-in page says you are. Chromium and Krait are stopped by PID in
# finally blocks / fixtures.

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.e2e_tools import Chromium, ensure_program, wait_until
from tests.helpers import ROOT

pytestmark = pytest.mark.external

DEMO = ROOT / "examples" / "demo"
NAME = "Chromium <i>tester</i>"
MESSAGE = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\"> & hi from headless"

# Read the guestbook as a visitor sees it: the entries' text, plus traces of markup that should not exist.
READ_GUESTBOOK = """JSON.stringify({
  path: location.pathname + location.search,
  entries: Array.from(document.querySelectorAll("article")).map(a => ({
    name: a.querySelector(".meta strong").textContent,
    message: a.querySelector(".message").textContent,
    elements: a.querySelectorAll(".message *, .meta strong *").length})),
  counter: document.body.textContent.includes("You have posted 1 message(s)"),
  pwned: window.__pwned || null,
  scripts: document.scripts.length})"""

READ_LOGIN = """JSON.stringify({
  path: location.pathname + location.search,
  user: (document.getElementById("user") || {}).textContent || null,
  topics: (document.getElementById("topics") || {}).textContent || null,
  form: !!document.querySelector('form[action="/login"]'),
  cookie: document.cookie})"""

READ_CHAT = """JSON.stringify({
  status: document.getElementById("status").textContent,
  server: Array.from(document.querySelectorAll("#log .from-server")).map(p => p.textContent),
})"""


def chat_when(page, check) -> dict:
    """Poll a chat page (up to 10 s) until check(state) holds; return that state."""

    def poll() -> dict | None:
        state = json.loads(page.evaluate(READ_CHAT))
        return state if check(state) else None

    return wait_until(poll, 10, what="the chat log to show " + (check.__doc__ or "a line"))


def say(page, text: str, form: str = "say", field: str = "message") -> None:
    """Type `text` into a chat page's form and press its button."""
    page.evaluate("""(() => {
      document.getElementById(%s).value = %s;
      document.querySelector('#%s button[type="submit"]').click();
      return true; })()""" % (json.dumps(field), json.dumps(text), form))


@pytest.fixture
def browser(tmp_path):
    binary = ensure_program(("chromium", "chromium-headless-shell", "chromium-browser"), "chromium")
    chromium = Chromium(binary, tmp_path)
    page = None
    try:
        page = chromium.page()
        page.chromium = chromium  # for tests that open more tabs
        page.send("Page.enable")
        page.send("Runtime.enable")
        yield page
    except BaseException:
        print("--- chromium stderr (tail) ---\n" + chromium.log()[-3000:])
        raise
    finally:
        if page is not None:
            page.close()
        chromium.stop()


@pytest.fixture
def demo(tmp_path, krait_server):
    site = tmp_path / "demo"
    shutil.copytree(DEMO, site, ignore=shutil.ignore_patterns("*.sqlite3*", "__pycache__"))
    return krait_server(site)


def test_guestbook_form_and_live_socket_in_chromium(demo, browser):
    # demo first: fixtures are torn down in reverse, so Chromium (and its open WebSocket) goes before Krait.
    started = time.monotonic()
    base = demo.url

    # 1. The guestbook: fill the form the way a visitor would and press the button.
    browser.navigate(base + "/guestbook")
    before = json.loads(browser.evaluate(READ_GUESTBOOK))
    assert before["path"] == "/guestbook"
    assert before["pwned"] is None and before["entries"], before
    assert all(e["elements"] == 0 for e in before["entries"]), "seeded XSS entries must render as text"
    browser.mark_page()
    browser.evaluate("""(() => {
      const form = document.querySelector('form[action="/guestbook/post"]');
      form.elements.name.value = %s;
      form.elements.message.value = %s;
      form.querySelector('button[type="submit"]').click();
      return true; })()""" % (json.dumps(NAME), json.dumps(MESSAGE)))
    browser.wait_for_new_page()

    # 2. After the redirect: back on /guestbook, the new entry first, exactly as typed, shown as text.
    after = json.loads(browser.evaluate(READ_GUESTBOOK))
    assert after["path"] == "/guestbook", after  # 303 to /guestbook, no ?error=
    newest = after["entries"][0]
    assert newest["name"] == NAME and newest["message"] == MESSAGE, newest
    assert newest["elements"] == 0, "the posted markup must be escaped, not parsed"
    assert after["pwned"] is None, "a guestbook entry ran script in the browser"
    assert after["counter"], "the guestbook_posts cookie was not sent back by the browser"
    assert len(after["entries"]) == len(before["entries"]) + 1
    html = browser.evaluate("document.documentElement.outerHTML")
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html

    # 3. The chat room: the browser's own WebSocket is greeted, and what it sends comes back from the room.
    browser.navigate(base + "/chat?name=ada")

    def greeted(state: dict) -> bool:
        """the greeting and the join notice"""
        return "welcome, ada" in state["server"] and "* ada joined" in state["server"]

    def answered(state: dict) -> bool:
        """the room's delivery of our message"""
        return "ada: ping <b>from</b> chromium" in state["server"]

    state = chat_when(browser, greeted)
    assert state["status"] == "connected", state

    # 4. Send a message through the page's form, see the room deliver it (as text, not markup).
    say(browser, "ping <b>from</b> chromium")
    chat_when(browser, answered)
    assert browser.evaluate("document.querySelectorAll('#log b').length") == 0

    # 5. Sign in: a name and two ticked interests (a checkbox group), kept in the session.
    browser.navigate(base + "/login")
    assert json.loads(browser.evaluate(READ_LOGIN))["form"]
    browser.mark_page()
    browser.evaluate("""(() => {
      const form = document.querySelector('form[action="/login"]');
      form.elements.name.value = %s;
      for (const box of form.querySelectorAll('input[name="topic"]')) {
        box.checked = box.value === "Python" || box.value === "SQLite";
      }
      form.querySelector('button[type="submit"]').click();
      return true; })()""" % json.dumps(NAME))
    browser.wait_for_new_page()
    signed_in = json.loads(browser.evaluate(READ_LOGIN))
    assert signed_in["path"] == "/login" and not signed_in["form"], signed_in
    assert (signed_in["user"], signed_in["topics"]) == (NAME, "Python, SQLite"), signed_in
    assert "krait_session" not in signed_in["cookie"], "the session cookie must be HttpOnly"
    browser.navigate(base + "/")  # another page, maybe another worker: the session follows
    browser.navigate(base + "/login")
    assert json.loads(browser.evaluate(READ_LOGIN))["user"] == NAME

    # 6. The JSON endpoint: the page's button fetches /api/me; a POST changes the interests; bad JSON is a 400.
    browser.evaluate("document.getElementById('ask').click()")
    answer = wait_until(lambda: browser.evaluate("document.getElementById('answer').textContent").startswith("{")
                        and browser.evaluate("document.getElementById('answer').textContent"), 10,
                        what="the answer of /api/me")
    assert json.loads(answer) == {"user": NAME, "topics": ["Python", "SQLite"]}
    posted = browser.evaluate("""fetch("/api/me", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({topics: ["WebSockets"]})}).then(r => r.json())""")
    assert posted == {"user": NAME, "topics": ["WebSockets"]}
    bad = browser.evaluate("""fetch("/api/me", {method: "POST", body: "{topics: oops}"})
      .then(r => r.text().then(text => [r.status, text]))""")
    assert bad[0] == 400 and bad[1].startswith("the request body is not valid JSON: Expecting property name"), bad

    # 7. Sign out: the session is emptied and the form is back.
    browser.mark_page()
    browser.evaluate("document.querySelector('form[action=\"/logout\"] button').click()")
    browser.wait_for_new_page()
    signed_out = json.loads(browser.evaluate(READ_LOGIN))
    assert signed_out["form"] and signed_out["user"] is None, signed_out
    assert browser.evaluate('fetch("/api/me").then(r => r.json())') == {"user": None, "topics": []}

    # The server saw all of it: the POST, the redirect target and the upgrade.
    log = demo.log()
    assert "Traceback" not in log, log
    print("\n[e2e] browser test body took %.1f s" % (time.monotonic() - started))


def test_a_line_typed_in_one_chat_page_appears_in_the_other(demo, browser, tmp_path):
    # Two visitors in the chat room, two tabs of one headless Chromium: the room delivers each one's
    # lines to the other, with join and leave notices, and an announcement posted over plain HTTP.
    base = demo.url
    browser.navigate(base + "/chat?name=alice")

    def greeted(state: dict) -> bool:
        """alice's greeting"""
        return "welcome, alice" in state["server"]

    chat_when(browser, greeted)
    bob = browser.chromium.new_page()  # a second tab of the same browser
    bob.send("Page.enable")
    bob.send("Runtime.enable")
    try:
        bob.navigate(base + "/chat?name=bob")

        def bob_joined(state: dict) -> bool:
            """alice seeing bob join"""
            return "* bob joined" in state["server"]

        chat_when(browser, bob_joined)
        say(browser, "hello from alice")
        say(bob, "hi alice, bob here")

        def both(state: dict) -> bool:
            """both lines"""
            return "alice: hello from alice" in state["server"] and "bob: hi alice, bob here" in state["server"]

        chat_when(bob, both)
        chat_when(browser, both)
        say(bob, "the server says hi", form="announce", field="announcement")

        def announced(state: dict) -> bool:
            """the announcement sent with HTTP POST"""
            return "[announcement] the server says hi" in state["server"]

        chat_when(browser, announced)
        chat_when(bob, announced)
        bob.navigate("about:blank")  # bob leaves

        def bob_left(state: dict) -> bool:
            """bob leaving"""
            return "* bob left" in state["server"]

        chat_when(browser, bob_left)
    finally:
        bob.close()
    assert "Traceback" not in demo.log(), demo.log()
