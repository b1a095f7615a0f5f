# ANY /request: echo the request back as an HTML page.
import krait
from krait import mvc

from ctrl.request_echo import RequestController

mvc.set_init_ctrl(RequestController(krait.request))
