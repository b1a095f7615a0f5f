# Sourced by the other scripts: pick the Python to install into and run with, as $PY.
#
# Inside an active virtualenv, that one. Otherwise a project venv in .venv (created on first use), because
# Debian's system Python refuses `pip install` (PEP 668, "externally managed"). Where venv is unavailable
# (Debian without python3-venv), fall back to the system Python with --break-system-packages.
PIP_EXTRA=""
if [ -n "${VIRTUAL_ENV:-}" ]; then
    PY=python
else
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv >/dev/null 2>&1 || rm -rf .venv
    fi
    if [ -x .venv/bin/python ]; then
        PY=.venv/bin/python
    else
        PY=python3
        if python3 -c 'import sys, sysconfig, os; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
            PIP_EXTRA="--break-system-packages"
        fi
    fi
fi
pip_install() {
    "$PY" -m pip install --quiet --disable-pip-version-check $PIP_EXTRA "$@"
}
