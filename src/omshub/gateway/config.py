"""Transition shim, removed once the head-end imports omshub.protocol.config directly."""

from omshub.protocol.config import (MAX_PATCH_DEPTH, ConfigError, GatewayConfig, cron_for_croniter,  # noqa: F401
                                    diff_patch, merge_patch, patch_depth, spread_offset, validate_config)
