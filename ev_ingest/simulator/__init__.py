"""An exacqVision-compatible web service with synthetic, decodable recordings and known motion.

`create_app(config)` gives the ASGI app; `SimulatorServer` runs it on a real socket in a
thread; `ev-ingest simulator` runs it from the command line.
"""

from ev_ingest.simulator.config import SimulatorConfig
from ev_ingest.simulator.server import SimulatorServer, create_app, free_port

__all__ = ["SimulatorConfig", "SimulatorServer", "create_app", "free_port"]
