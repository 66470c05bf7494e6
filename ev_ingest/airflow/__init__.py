"""The Airflow integration: a hook (connection -> client) and a deferrable export trigger.

The only place in `ev_ingest` that imports Airflow.
"""
