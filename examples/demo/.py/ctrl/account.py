# Signing in: a name (no password, this is a demo) and a few interests, kept in krait.session.
from krait import mvc

MAX_NAME = 40
TOPICS = ["Python", "Templates", "WebSockets", "SQLite"]


def known_topics(values):
    """The interests among `values` that the page offers, in the page's order, each once."""
    chosen = {value for value in values if isinstance(value, str)}
    return [topic for topic in TOPICS if topic in chosen]


def whoami(session):
    """What /api/me answers: the signed-in name (or None) and the interests."""
    return {"user": session.get("user"), "topics": session.get("topics", [])}


class LoginController(mvc.CtrlBase):
    page_url = "/login"
    title = "Sign in"

    def __init__(self, request, session):
        self.user = session.get("user")
        self.topics_text = ", ".join(session.get("topics", [])) or "none"
        self.all_topics = TOPICS
        self.max_name = MAX_NAME
        self.error = request.query.get("error") == "name"

    def get_view(self):
        return ".view/login.html"
