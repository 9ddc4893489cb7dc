"""The LLM API service (`python -m services.llm_api`)."""

# How every mock engine reply begins: the mock is labelled, and `raictl chat` notes it by this label.
MOCK_LABEL = "[mock]"
