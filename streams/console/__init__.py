"""``distillguard console``: the analysts' web application (aiohttp + plotly) over ClickHouse."""
