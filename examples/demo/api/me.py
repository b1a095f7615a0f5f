# /api/me, a JSON endpoint over the session. GET: who is signed in. POST {"topics": [...]}: change the
# interests of the signed-in visitor. A body that is not JSON gets 400 from Krait, with the reason.
from ctrl import account

import krait

if krait.request.http_method == "POST":
    data = krait.request.get_json()
    if "user" not in krait.session:
        krait.response = krait.ResponseJSON({"error": "sign in first"}, 403)
    elif not isinstance(data, dict) or not isinstance(data.get("topics"), list):
        krait.response = krait.ResponseJSON({"error": 'send {"topics": [...]}'}, 422)
    else:
        krait.session["topics"] = account.known_topics(data["topics"])
if krait.response is None:
    krait.response = krait.ResponseJSON(account.whoami(krait.session))
