"""The video processing core: decode (PyAV, OpenCV fallback), detect motion, summarise.

Pure and reusable: no Airflow, no S3. `analyze(path_or_bytes, mode="gated")` gives a
`MotionSummary` with a per-second timeline and motion events as Arrow tables.
"""

from pipelines.video.analyze import MODES, MotionSummary, analyze
from pipelines.video.decode import CorruptVideoError, VideoError
from pipelines.video.detect import MOG2Detector, RunningAverageDetector
from pipelines.video.motion_config import MotionConfig
from pipelines.video.summary import EVENTS_SCHEMA, TIMELINE_SCHEMA, Event

__all__ = [
    "EVENTS_SCHEMA",
    "MODES",
    "TIMELINE_SCHEMA",
    "CorruptVideoError",
    "Event",
    "MOG2Detector",
    "MotionConfig",
    "MotionSummary",
    "RunningAverageDetector",
    "VideoError",
    "analyze",
]
