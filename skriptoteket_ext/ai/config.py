"""Configuration of the AI capabilities: everything off unless configured.

Sources, lowest precedence first:

1. built-in defaults (``DEFAULTS``, with a few per-capability differences in ``CAPABILITY_DEFAULTS``);
2. ``SKRIPTOTEKET_AI_<KEY>`` environment variables: defaults for every capability
   (``SKRIPTOTEKET_AI_BASE_URL``, ``SKRIPTOTEKET_AI_API_KEY``, ``SKRIPTOTEKET_AI_MODEL``, ``…_MAX_TOKENS``,
   ``…_REQUESTS_PER_MINUTE``, ``…_TOKENS_PER_DAY``, ``…_TIMEOUT``, ``…_TEMPERATURE``);
   ``SKRIPTOTEKET_AI_CAPABILITIES=generate,edit`` limits which capabilities the variables switch on;
3. ``SKRIPTOTEKET_AI_<CAPABILITY>_<KEY>`` (for example ``SKRIPTOTEKET_AI_COMPLETE_MODEL``);
4. the traitlet ``c.SkriptoteketService.ai = {"default": {...}, "generate": {...}, ...}``.

A capability is *on* when it is enabled and has a base URL and a model; *off* when it has neither;
*misconfigured* otherwise (a reason is kept for the administrator's log, never shown to authors).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlparse

CAPABILITIES = ("generate", "edit", "explain", "complete")

ON, OFF, MISCONFIGURED = "on", "off", "misconfigured"

DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "base_url": "",
    "api_key": "",
    "model": "",
    "max_tokens": 4096,
    "requests_per_minute": 10,  # 0 = no limit
    "tokens_per_day": 200_000,  # 0 = no limit
    "timeout": 120.0,  # seconds for the whole model call (streamed or not)
    "temperature": 0.2,
    "stream_usage": True,  # ask for token usage in streams (stream_options.include_usage)
}
CAPABILITY_DEFAULTS: dict[str, dict[str, Any]] = {
    "complete": {"max_tokens": 256, "requests_per_minute": 60, "timeout": 20.0, "temperature": 0.0},
    "explain": {"max_tokens": 2048},
}
KEYS = tuple(DEFAULTS)
ENV_PREFIX = "SKRIPTOTEKET_AI_"


@dataclass(frozen=True)
class CapabilityConfig:
    capability: str
    state: str
    reason: str = ""  # why it is off or misconfigured (for logs and admins)
    base_url: str = ""
    api_key: str = field(default="", repr=False)  # never in reprs or logs
    model: str = ""
    max_tokens: int = 0
    requests_per_minute: int = 0
    tokens_per_day: int = 0
    timeout: float = 0.0
    temperature: float = 0.0
    stream_usage: bool = True

    @property
    def on(self) -> bool:
        return self.state == ON

    def public(self) -> dict:
        """What any logged-in user may know (the status endpoint): no URL, key or model."""
        out: dict[str, Any] = {"state": self.state, "enabled": self.on}
        if self.on:
            out["limits"] = {"requests_per_minute": self.requests_per_minute, "tokens_per_day": self.tokens_per_day}
        return out


@dataclass(frozen=True)
class AiSettings:
    capabilities: dict[str, CapabilityConfig]
    log_prompts: bool = False

    def __getitem__(self, capability: str) -> CapabilityConfig:
        return self.capabilities[capability]

    @property
    def any_on(self) -> bool:
        return any(c.on for c in self.capabilities.values())


def _env_values(env: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {key: env[prefix + key.upper()] for key in KEYS if prefix + key.upper() in env}


def _coerce(key: str, value: Any) -> Any:
    default = DEFAULTS[key]
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.strip().lower() in ("1", "true", "yes", "on")
        raise ValueError(f"{key} must be true or false")
    if isinstance(default, int):
        if isinstance(value, bool):
            raise ValueError(f"{key} must be a whole number")
        number = int(str(value).strip()) if not isinstance(value, int) else value
        if number < 0:
            raise ValueError(f"{key} must not be negative")
        return number
    if isinstance(default, float):
        if isinstance(value, bool):
            raise ValueError(f"{key} must be a number")
        return float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text")
    return value.strip()


def resolve_capability(capability: str, trait: Mapping[str, Any] | None, env: Mapping[str, str]) -> CapabilityConfig:
    trait = dict(trait or {})
    raw: dict[str, Any] = {**DEFAULTS, **CAPABILITY_DEFAULTS.get(capability, {})}
    raw.update(_env_values(env, ENV_PREFIX))
    listed = env.get(ENV_PREFIX + "CAPABILITIES")
    if listed is not None and capability not in {c.strip() for c in listed.split(",")}:
        raw["enabled"] = False
    raw.update(_env_values(env, f"{ENV_PREFIX}{capability.upper()}_"))
    for section in (trait.get("default"), trait.get(capability)):
        if section is None:
            continue
        if not isinstance(section, Mapping):
            return CapabilityConfig(capability, MISCONFIGURED, "its configuration must be a dict")
        unknown = sorted(set(section) - set(KEYS))
        if unknown:
            return CapabilityConfig(capability, MISCONFIGURED, f"unknown keys {unknown}")
        raw.update(section)
    try:
        values = {key: _coerce(key, raw[key]) for key in KEYS}
    except (TypeError, ValueError) as err:
        return CapabilityConfig(capability, MISCONFIGURED, str(err))
    enabled = values.pop("enabled")
    if not enabled:
        return CapabilityConfig(capability, OFF, "disabled")
    if not values["base_url"] and not values["model"]:
        return CapabilityConfig(capability, OFF, "not configured")
    if not values["base_url"]:
        return CapabilityConfig(capability, MISCONFIGURED, "base_url missing")
    if not values["model"]:
        return CapabilityConfig(capability, MISCONFIGURED, "model missing")
    url = urlparse(values["base_url"])
    if url.scheme not in ("http", "https") or not url.netloc:
        return CapabilityConfig(capability, MISCONFIGURED, "base_url must be an http(s) URL")
    if values["timeout"] <= 0 or values["max_tokens"] < 1:
        return CapabilityConfig(capability, MISCONFIGURED, "timeout and max_tokens must be positive")
    return CapabilityConfig(capability, ON, "", **values)


def resolve(trait: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
            log_prompts: bool = False) -> AiSettings:
    env = os.environ if env is None else env
    trait = dict(trait or {})
    caps = {cap: resolve_capability(cap, trait, env) for cap in CAPABILITIES}
    unknown = sorted(set(trait) - {"default", *CAPABILITIES})
    if unknown:  # a typo in a capability's name must not silently leave it off
        caps = {cap: CapabilityConfig(cap, MISCONFIGURED, f"unknown capabilities {unknown} in the ai setting")
                for cap in CAPABILITIES}
    return AiSettings(caps, log_prompts=log_prompts)
