"""The cost processor: its config, the price book (genai-prices) and the enrichment of GenAI spans."""
