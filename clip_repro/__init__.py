__version__ = "0.1.0"
# clip_repro: an executable, literate reproduction of the CLIP paper's appendix.
# The public API mirrors openai/CLIP: `available_models()`, `load(name_or_path, device="cpu", jit=False)` returning
# `(model, preprocess)`, and `tokenize(texts, context_length=77, truncate=False)`. Submodules are imported on first
# use, so `import clip_repro` stays cheap (the runner's CLI does not pay for torch until it needs it).

_API = {"available_models": "model", "load": "model", "build_model": "model", "tokenize": "tokenizer"}
__all__ = ["available_models", "load", "tokenize", "build_model", "__version__"]


def __getattr__(name):
    if name in _API:
        import importlib
        return getattr(importlib.import_module(f"clip_repro.{_API[name]}"), name)
    raise AttributeError(f"module 'clip_repro' has no attribute {name!r}")
