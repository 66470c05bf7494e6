"""pipelines: the three jobs' code, by folder: `nightly` (the operator's night), `compliance`
(the officer's tools), `analytics` (the data scientist's access), the `ev-ingest` command
(`cli`) and the video core (`video`); `config`, `connections`, `progress`, `terminal` and
`sandbox` beside them (docs/development.md, "Where things live")."""
