"""OTLP wire-format helpers: index the regions of a serialized batch and splice changed messages in."""
