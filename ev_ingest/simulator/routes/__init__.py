"""The simulator's routes by API area: each module's `make(state)` returns its handlers;
`ev_ingest.simulator.app.build_app` lays out the paths."""
