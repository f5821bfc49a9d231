"""Zerodha Kite adapter: ticker protocol, REST history download, websocket client, local fake.

Everything that speaks Kite's wire formats lives in this package; the rest of the engine sees
plain ticks, bars and (later) broker events.
"""
