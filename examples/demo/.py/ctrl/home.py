# The home page: a controller whose attributes the view .view/index.html reads as ctrl.<name>.
import time

from ctrl import visitor
from krait import mvc

FEATURES = [
    ("Static files", "CSS and JS here are cached for 30 days (see .py/init.py)."),
    ("Python scripts", "Every page is a .py route target that picks a controller."),
    ("Pympl templates", "Views live in .view/ and share one header via @import."),
    ("Forms and cookies", "The guestbook stores messages in SQLite and counts yours in a cookie."),
    ("Sessions and JSON", "Sign in keeps your name in krait.session; /api/me answers with JSON."),
    ("WebSockets", "The chat room: every visitor's controller joins one room; publish() reaches them all."),
]


class HomeController(mvc.CtrlBase):
    page_url = "/"
    title = "Welcome"

    def __init__(self):
        now = time.localtime()
        self.hour = now.tm_hour
        self.time_str = time.strftime("%H:%M", now)
        self.features = FEATURES
        self.posts = visitor.post_count()

    def get_view(self):
        return ".view/index.html"
