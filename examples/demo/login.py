# GET /login: the sign-in page (a name, no password, and a few interests), or who you are once signed in.
from ctrl.account import LoginController

import krait
from krait import mvc

mvc.set_init_ctrl(LoginController(krait.request, krait.session))
