"""AI assistance for script authors through any OpenAI-compatible endpoint (docs/ai.md).

- ``config``: per-capability settings (traitlet ``SkriptoteketService.ai`` and ``SKRIPTOTEKET_AI_*`` variables)
- ``prompts``: the messages sent to the model, with the contract reference (``contract_reference.md``)
- ``client``: the ``openai`` wrapper (timeouts, streaming, upstream failures → ``AiError``)
- ``limits``: per-user requests/minute and tokens/day, in Postgres (``ai_usage``)
- ``diff``: unified diffs that are checked to apply cleanly before they are offered
- ``capabilities``: generate, edit, explain, complete — parse, validate, shape the answers

The API key never leaves the service: the notebook only ever talks to the service.
"""

from .config import CAPABILITIES, AiSettings, CapabilityConfig, resolve

__all__ = ["CAPABILITIES", "AiSettings", "CapabilityConfig", "resolve"]
