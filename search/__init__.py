"""The search framework: Ray Tune + Optuna + ASHA over the alphabet library."""
