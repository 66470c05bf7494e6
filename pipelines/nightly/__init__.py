"""The operator's unattended night: plan the night's exports (`steps`), export each chunk
into the store (`export_job`), commit the signed manifest (`steps`), summarise motion
(`motion_step`), thumbnails and contact sheets (`thumbnails`), the recorder horizon
(`horizon`), and the whole night in one process without Airflow (`run`)."""
