# GET /: pick the home page controller; Krait then renders its view.
from krait import mvc

from ctrl.home import HomeController

mvc.set_init_ctrl(HomeController())
