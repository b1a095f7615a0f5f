# POST /guestbook/post (see the route in .py/init.py): store a message, count it in a cookie, and
# redirect back to the guestbook (POST-redirect-GET, so reloading the page does not post twice).
import store
from ctrl import visitor

import krait

if krait.request.http_method != "POST":
    # Reached as GET /guestbook_post through the default route: nothing to store.
    krait.response = krait.ResponseRedirect("/guestbook")
else:
    form = krait.request.get_post_form()
    name = form.get("name", "").strip()
    message = form.get("message", "").strip()
    if not name or not message:
        krait.response = krait.ResponseRedirect("/guestbook?error=empty")
    elif len(name) > store.MAX_NAME or len(message) > store.MAX_MESSAGE:
        krait.response = krait.ResponseRedirect("/guestbook?error=long")
    else:
        store.add_message(name, message)
        visitor.remember_post()
        krait.response = krait.ResponseRedirect("/guestbook")
