"""The redaction processor: PII and secret patterns, validators, the scanner, the walk over batches."""
