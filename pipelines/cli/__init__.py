"""The `ev-ingest` command (`main`), its verbs grouped by who runs them: the recording server
(`recorder`), the data scientist (`analyst`), the stand-ins for a site (`stand_ins`), the
operator's night (`night`), the compliance officer (`officer`); `common` is what they share."""
