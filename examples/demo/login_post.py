# POST /login (see the route in .py/init.py): keep the name and the ticked interests in the session.
from ctrl import account

import krait

form = krait.request.get_post_form()
name = form.get("name", "").strip()
# A group of checkboxes sends one "topic" field per ticked box: get_post_form() would keep only the last.
topics = krait.request.get_post_form_all().get("topic", [])
if not 1 <= len(name) <= account.MAX_NAME:
    krait.response = krait.ResponseRedirect("/login?error=name")
else:
    krait.session["user"] = name
    krait.session["topics"] = account.known_topics(topics)
    krait.session.regenerate()  # signed in: a new session id, so an id seen before cannot follow the visitor
    krait.response = krait.ResponseRedirect("/login")
