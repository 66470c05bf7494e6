"""ev_ingest: talk to exacqVision, land bytes in S3.

Never imports `pipelines`, `cv2` or Airflow (except `ev_ingest.airflow`).
"""
