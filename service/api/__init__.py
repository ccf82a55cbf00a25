"""The wire types: what the server answers, the client parses and training's predict prints.

Pydantic only at run time, and relative imports only: the client's wheel (client/pyproject.toml) carries this
package as `vision_client.api`, so the client parses answers with the very types the server builds them from.
"""
