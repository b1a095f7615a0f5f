# The rows of the benchmark's 100-row table, shared by the Krait site (.py/init.py) and the
# Jinja2 peer (bench/peers/wsgi_apps.py) so both render exactly the same data.
#
# Rules: deterministic (no randomness, no clock); a few values need HTML escaping (&, <, >) so
# both template engines do their escaping work; no quotes, because Pympl writes `"` as `&quot;`
# and Jinja2 as `&#34;`, and the harness compares the two pages byte for byte.


def make_rows(count=100):
    """Return `count` dicts with keys id, name, vendor, price (float) and stock (bool)."""
    rows = []
    for i in range(1, count + 1):
        rows.append(
            {
                "id": i,
                "name": f"Widget {i} & Sons" if i % 7 == 0 else f"Widget {i}",
                "vendor": f"ACME <{i % 5}>" if i % 3 == 0 else f"Vendor {i % 11}",
                "price": i * 1.37 + 0.5,
                "stock": i % 4 != 0,
            }
        )
    return rows
