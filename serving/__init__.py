"""A TensorFlow Serving-compatible model server (REST and gRPC) for the pushed model."""
