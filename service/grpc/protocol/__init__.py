"""The protocol's messages, generated from inference.proto by grpcio-tools (never edited by hand)."""
