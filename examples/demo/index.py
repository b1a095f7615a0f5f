# GET /: pick the home page controller; Krait then renders its view.
from ctrl.home import HomeController

from krait import mvc

mvc.set_init_ctrl(HomeController())
