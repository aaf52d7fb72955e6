from .predictor import BACKENDS, DepthResult, Predictor, default_model_path, validate_model_file

__all__ = ["BACKENDS", "DepthResult", "Predictor", "default_model_path", "validate_model_file"]
