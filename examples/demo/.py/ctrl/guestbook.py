# The guestbook page: lists messages (newest first) and shows the visitor's own post count.
import store

from ctrl import visitor
from krait import mvc

# Error codes the POST handler may put in the query string (?error=...), and what they mean.
ERRORS = {
    "empty": "Please fill in both your name and a message.",
    "long": f"Names are limited to {store.MAX_NAME} characters, messages to {store.MAX_MESSAGE}.",
}


class GuestbookController(mvc.CtrlBase):
    page_url = "/guestbook"
    title = "Guestbook"

    def __init__(self, request):
        self.messages = store.latest_messages()
        self.posts = visitor.post_count()
        self.error = ERRORS.get(request.query.get("error", ""))
        self.max_name = store.MAX_NAME
        self.max_message = store.MAX_MESSAGE

    def get_view(self):
        return ".view/guestbook.html"
