# What the demo knows about the visitor: a cookie counting their guestbook posts.
from krait import cookie

POSTS_COOKIE = "guestbook_posts"


def post_count():
    """How many messages this browser has posted (0 when the cookie is missing or tampered with)."""
    try:
        return max(0, int(cookie.get_cookie(POSTS_COOKIE, "0")))
    except ValueError:
        return 0


def remember_post():
    """Send the cookie again with the count plus one: HttpOnly, SameSite=Lax, kept for a year."""
    counter = cookie.Cookie(POSTS_COOKIE, str(post_count() + 1))
    counter.set_path("/")
    counter.set_max_age(365 * 24 * 3600)
    counter.set_http_only(True)
    counter.set_same_site("Lax")
    cookie.set_cookie(counter)
