"""The wire types: what the server answers, the client parses and training's predict prints.

Pydantic only at run time (and the contract's pydantic types): no engine, numpy, ONNX Runtime or web
framework, so the client and the trainer can share them without the server's dependencies.
"""
