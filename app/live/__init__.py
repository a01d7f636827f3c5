"""The live feed: change fan-out (hub), the websocket protocol and its endpoint."""
