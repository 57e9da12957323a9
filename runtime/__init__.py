"""The process model: a master that binds and supervises, workers that serve (and the simulator child)."""
