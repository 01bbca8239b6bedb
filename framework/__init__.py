"""mlops: declarative, config-driven serverless framework for ML models."""

__version__ = "0.1.0"
