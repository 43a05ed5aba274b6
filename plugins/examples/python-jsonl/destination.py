"""componentize-py finds the resource `writer` of the exported interface
`destination` as the class `Writer` of a module named `destination`."""

from app import Writer  # noqa: F401
