"""The API's routers, one module per feature; every route declares its right (roles.py)."""
