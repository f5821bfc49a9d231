"""The daemon's HTTP side, apart from the aiohttp wiring in ``app.http_api``: the control
token, the dashboard's database snapshot, the Prometheus exposition and the dashboard page."""
