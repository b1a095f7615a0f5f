# GET /hello/<name> (a regex route in .py/init.py): the named group arrives in krait.url_params.
import krait
from krait import mvc

name = krait.url_params.get("name", "stranger")
mvc.set_init_ctrl(
    mvc.SimpleCtrl(".view/hello.html", {"page_url": "/hello/visitor", "title": "Hello", "name": name})
)
