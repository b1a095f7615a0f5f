# Controllers of the demo site: one module per page, imported by the route scripts.
