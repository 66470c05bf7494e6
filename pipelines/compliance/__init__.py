"""The compliance officer's tools: the one reader of signed records (`records`), retention
policy (`policy`), legal holds (`holds`, `case_holds`), the audit (`auditor`, `findings`,
`audit_checkpoint`), disposal (`disposal`), what is protected (`status`), evidence
packages (`evidence`, `package_zip`) and the signing keys (`signing_keys`)."""
