"""The daemon's HTTP side, apart from the aiohttp wiring in ``engine.http_api``: the control
token, the dashboard's database snapshot, the Prometheus exposition and the dashboard page."""
