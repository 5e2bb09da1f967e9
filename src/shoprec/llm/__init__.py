"""Large language models behind one chat interface: a local llama.cpp server by default, any OpenAI-compatible
server when configured, or none (every LLM feature then answers "unavailable").
"""
