# POST /logout: forget everything the session held and drop its cookie.
import krait

krait.session.clear()
krait.response = krait.ResponseRedirect("/login")
