"""The Open Inference Protocol over gRPC (KServe's `inference.GRPCInferenceService`, with Triton's model
repository extension), beside REST in the same process and on the same engine: parse, call, build."""
