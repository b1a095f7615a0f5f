# GET /guestbook: the guestbook page.
from ctrl.guestbook import GuestbookController

import krait
from krait import mvc

mvc.set_init_ctrl(GuestbookController(krait.request))
