"""kitplay-bridge: REST, a WebSocket log stream and the playground page, in front of kitplayd.

A client of the daemon socket (``daemon.protocol``); it keeps no state of its own.
"""
