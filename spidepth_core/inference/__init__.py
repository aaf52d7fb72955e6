from .predictor import BACKENDS, DepthResult, Predictor, default_model_path

__all__ = ["BACKENDS", "DepthResult", "Predictor", "default_model_path"]
