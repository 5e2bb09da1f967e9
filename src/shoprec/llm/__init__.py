"""The language-model layer: prompt templates, query understanding (rules + LLM) and the assistant."""
