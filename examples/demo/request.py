# ANY /request: echo the request back as an HTML page.
from ctrl.request_echo import RequestController

import krait
from krait import mvc

mvc.set_init_ctrl(RequestController(krait.request))
