"""The data scientist's access to the archive: motion timelines, events, exports and
manifests as DataFrames (`datasets`), plots (`plots`) and the nightly HTML report (`report`)."""
