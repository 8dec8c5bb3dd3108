"""adapters: a lash session's tools in the shapes LLM SDKs expect."""
