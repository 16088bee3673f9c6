"""Load generator for the gateway: a realistic, seeded mix of models, tenants, streams and PII prompts."""
