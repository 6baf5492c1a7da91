"""Local HTTP stand-ins of the Sheets API and of each marketplace, for the demo and tests.

Each stand-in is stateful, listens on loopback only, records every request it receives and
has knobs for latency and injected faults (see `base`). Each module cites the public
documents it follows.
"""
