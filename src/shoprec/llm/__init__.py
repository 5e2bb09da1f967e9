"""The language-model layer: one chat interface (a local llama.cpp server by default, any OpenAI-compatible server
when configured, or none: every LLM feature then answers "unavailable"), prompt templates, query understanding
(rules + LLM) and the assistant.
"""
