"""The process model: a master that binds and supervises, workers that serve.

The master also runs the bundled school simulator as a child when enabled.
"""
