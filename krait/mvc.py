# krait.mvc: controllers for MVC pages.
#
# Rules (docs/mvc.md): a .py route target calls set_init_ctrl(ctrl); after the script
# has run, the worker pushes that controller (binding it as `ctrl` in the namespace), renders the
# template named by ctrl.get_view() (a path relative to the site root) as the response body, then
# pops it. push_ctrl/pop_ctrl keep a stack so nested views can switch controllers. All four
# globals are per request: krait._begin_request() gives each request fresh ones.

from __future__ import annotations


class CtrlBase:
    """Base of an MVC controller; subclasses override get_view()."""

    def get_view(self) -> str:
        """Return the path of the view template, relative to the site root (e.g. ".view/x.html")."""
        raise NotImplementedError("controllers must override get_view()")


class SimpleCtrl(CtrlBase):
    """A controller made from a view path and a dict of attributes.

    Args:
        view: the view template's path, relative to the site root.
        members: attributes to set on the controller.
    """

    def __init__(self, view, members):
        self.view = view
        for name, value in members.items():
            setattr(self, name, value)

    def get_view(self) -> str:
        """Return the view given to the constructor."""
        return self.view


#: The controller a route script asked for; use set_init_ctrl().
init_ctrl = None
#: Saved controllers, for nested controllers; use push_ctrl()/pop_ctrl().
ctrl_stack: list = []
#: The controller currently rendering.
curr_ctrl = None


def set_init_ctrl(ctrl) -> None:
    """Render the page with this controller's view once the route script has finished."""
    global init_ctrl
    init_ctrl = ctrl


def push_ctrl(new_ctrl):
    """Save the current controller (if any) on the stack and make new_ctrl current; returns it."""
    global curr_ctrl
    if curr_ctrl is not None:
        ctrl_stack.append(curr_ctrl)
    curr_ctrl = new_ctrl
    return new_ctrl


def pop_ctrl():
    """Discard the current controller and restore the previous one (None when the stack is empty);
    returns the now-current controller."""
    global curr_ctrl
    curr_ctrl = ctrl_stack.pop() if ctrl_stack else None
    return curr_ctrl


def _reset() -> None:
    """Fresh per-request state (called by krait._begin_request)."""
    global init_ctrl, ctrl_stack, curr_ctrl
    init_ctrl = None
    ctrl_stack = []
    curr_ctrl = None
