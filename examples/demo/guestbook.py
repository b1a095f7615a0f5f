# GET /guestbook: the guestbook page.
import krait
from krait import mvc

from ctrl.guestbook import GuestbookController

mvc.set_init_ctrl(GuestbookController(krait.request))
