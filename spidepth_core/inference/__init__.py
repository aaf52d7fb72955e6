from ..shipped import default_model_path
from .predictor import DepthResult, Predictor
from .resolver import BACKENDS, Plan, resolve, validate_model_file

__all__ = ["BACKENDS", "DepthResult", "Plan", "Predictor", "default_model_path", "resolve", "validate_model_file"]
